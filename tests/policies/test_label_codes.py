"""ClassBalanced groups integer labels exactly: never through float64, a missing label its own
class (ordered last) that no int64 or uint64 label can merge with."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from policies import ClassBalanced, GDumb, SelectionContext
from policies.class_balanced import MISSING_GROUP, label_groups

I64_MAX = 2**63 - 1


def _per_class(labels: list[Any], strategy: ClassBalanced, *, batch_size: int = 1 << 16,
               label_type: pa.DataType = pa.int64()) -> dict[Any, int]:
    """How many rows of each label (None: missing) ``strategy`` selects."""
    store = Store.open(f"memory://label-codes-{uuid.uuid4().hex}", create=True)
    table = pa.table({"ts": list(range(len(labels))), "label": pa.array(labels, type=label_type)})
    snap = store.as_of(store.append(table).version)
    keys = strategy.select(SelectionContext(snapshot=snap, batch_size=batch_size)).keys.tolist()
    out: dict[Any, int] = {}
    for k in keys:  # the keys are the row positions 0..n-1
        out[labels[k]] = out.get(labels[k], 0) + 1
    return out


@pytest.mark.parametrize("batch_size", [7, 50, 1 << 16])
def test_huge_labels_next_to_a_missing_one_stay_apart(batch_size: int) -> None:
    # 2**62 and 2**62 + 1 are one float64; the first batch holds a null only for the largest size
    labels = [2**62] * 90 + [2**62 + 1] * 10 + [None]
    got = _per_class(labels, ClassBalanced(limit=21), batch_size=batch_size)
    assert got == {2**62: 10, 2**62 + 1: 10, None: 1}


@pytest.mark.parametrize("batch_size", [50, 1 << 16])
def test_missing_labels_after_a_batch_without_one_stay_apart(batch_size: int) -> None:
    labels = [2**62] * 50 + [2**62 + 1, None] * 25
    assert _per_class(labels, ClassBalanced(limit=30), batch_size=batch_size) == {
        2**62: 10, 2**62 + 1: 10, None: 10}
    # ratio: 20 of 100 rows; the unit left over goes to the smallest labels, missing is last
    assert _per_class(labels, ClassBalanced(ratio=0.2), batch_size=batch_size) == {
        2**62: 7, 2**62 + 1: 7, None: 6}


@pytest.mark.parametrize("batch_size", [7, 50, 1 << 16])
def test_the_largest_int64_label_is_not_the_missing_label(batch_size: int) -> None:
    assert MISSING_GROUP == I64_MAX
    labels = [I64_MAX] * 50 + [None] * 50
    assert _per_class(labels, ClassBalanced(limit=20), batch_size=batch_size) == {
        I64_MAX: 10, None: 10}
    labels = [I64_MAX] * 20 + [None] * 20 + [I64_MAX - 1] * 20
    assert _per_class(labels, ClassBalanced(limit=10), batch_size=batch_size) == {
        I64_MAX - 1: 4, I64_MAX: 3, None: 3}
    labels = [-(2**63)] * 20 + [None] * 20 + [I64_MAX] * 20
    assert _per_class(labels, ClassBalanced(limit=7), batch_size=batch_size) == {
        -(2**63): 3, I64_MAX: 2, None: 2}


@pytest.mark.parametrize("batch_size", [5, 1 << 16])
def test_uint64_labels_beyond_int64_are_classes_of_their_own(batch_size: int) -> None:
    labels = [2**64 - 1] * 10 + [2**63] * 10 + [None] * 3 + [5] * 10
    got = _per_class(labels, ClassBalanced(limit=12), batch_size=batch_size, label_type=pa.uint64())
    assert got == {5: 3, 2**63: 3, 2**64 - 1: 3, None: 3}
    got = _per_class(labels, ClassBalanced(ratio=0.5), batch_size=batch_size, label_type=pa.uint64())
    assert got == {5: 5, 2**63: 4, 2**64 - 1: 4, None: 3}


def test_integer_column_reads_values_exactly_with_their_validity() -> None:
    from policies._columns import integer_column

    values, valid = integer_column(pa.chunked_array([[2**62 + 1, None], [I64_MAX]]))
    assert values.dtype == np.int64 and values.tolist() == [2**62 + 1, 0, I64_MAX]
    assert valid is not None and valid.tolist() == [True, False, True]
    values, valid = integer_column(pa.array([2**64 - 1, 3], pa.uint64()))
    assert values.dtype == np.uint64 and values.tolist() == [2**64 - 1, 3] and valid is None
    with pytest.raises(InvalidArgumentError):
        integer_column(pa.array([1.5]))


def test_label_groups_put_a_missing_label_after_every_label() -> None:
    labels = np.array([2**62, 2**62 + 1, I64_MAX], dtype=np.int64)
    values = np.array([I64_MAX, 0, 2**62 + 1, 2**62], dtype=np.int64)
    valid = np.array([True, False, True, True])
    assert label_groups(values, labels, valid).tolist() == [2, 3, 1, 0]
    assert label_groups(values, None, valid).tolist() == [I64_MAX, MISSING_GROUP, 2**62 + 1, 2**62]


def test_label_groups_refuse_float_labels_that_may_have_been_rounded() -> None:
    # a nullable integer column read as float64 (the Ray path): exact within 2**53 only
    assert label_groups(np.array([3.0, np.nan, 2.0**53]), None).tolist() == [3, MISSING_GROUP, 2**53]
    with pytest.raises(InvalidArgumentError) as err:
        label_groups(np.array([1.0, np.nan, 2.0**62]), None)
    assert err.value.name == "labels[2]"


def test_gdumb_refuses_labels_that_float64_would_merge() -> None:
    """GDumb reads labels through float64 (NaN for a missing one): labels
    beyond 2**53 next to a missing one would merge there, so they are refused by name."""
    store = Store.open(f"memory://label-codes-{uuid.uuid4().hex}", create=True)
    labels = [2**62] * 9 + [2**62 + 1] * 3 + [None]
    snap = store.as_of(store.append(pa.table({"ts": list(range(13)), "label": labels})).version)
    strategy = GDumb(memory=6)
    with pytest.raises(InvalidArgumentError, match="within 2\\*\\*53") as err:
        strategy.select(SelectionContext(snapshot=snap))
    assert err.value.name == "label[0]"
    # within 2**53 the same column is read as before, the missing label a class of its own
    small = [2**53] * 9 + [2**53 - 1] * 3 + [None]
    snap = store.as_of(store.append(pa.table({"ts": list(range(13)), "label": small})).version)
    got = strategy.select(SelectionContext(snapshot=snap, excluded=np.arange(13))).keys - 13
    assert sorted(small[k] is None for k in got.tolist()).count(True) == 1 and got.size == 6
    assert {small[k] for k in got.tolist()} == {2**53, 2**53 - 1, None}
