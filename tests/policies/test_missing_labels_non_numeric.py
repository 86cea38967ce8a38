"""Class-based strategies on a string or boolean label column with nulls: a missing label is one
class of its own, ordered after every present label (as for a nullable integer column), instead
of a TypeError from comparing None with a string."""

from __future__ import annotations

import uuid
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from policies import ClassBalanced, GDumb, SelectionContext


def _snap(labels: pa.Array):  # type: ignore[no-untyped-def]
    store = Store.open(f"memory://missing-labels-{uuid.uuid4().hex}", create=True)
    n = len(labels)
    v = store.append(pa.table({"key": np.arange(n), "ts": np.arange(n), "label": labels})).version
    return store.as_of(v)


def _classes(keys: np.ndarray, labels: list) -> dict:  # type: ignore[type-arg]
    return dict(Counter(labels[k] for k in keys.tolist()))


def test_class_balanced_string_labels_with_nulls() -> None:
    labels = ["b", "a", None, "a", "a", "b", None, "c", "a", "a"]
    got = ClassBalanced(limit=6).select(SelectionContext(snapshot=_snap(pa.array(labels))))
    # 4 classes (a: 5, b: 2, missing: 2, c: 1): c 1, then 5 units over a, b, missing; the two
    # left over go to the smallest labels, missing last
    assert _classes(got.keys, labels) == {"a": 2, "b": 2, None: 1, "c": 1}


@pytest.mark.parametrize("labels", [
    ["b", "a", None, "a", "a", "b", None, "c", "a", "a"],
    [True, False, None, True, True, True, True, None, True, False],
])
def test_gdumb_balances_with_the_missing_class(labels: list) -> None:  # type: ignore[type-arg]
    got = GDumb(memory=6).select(SelectionContext(snapshot=_snap(pa.array(labels))))
    counts = _classes(got.keys, labels)
    assert got.size == 6 and None in counts
    # balanced: a class below the largest share holds all its rows
    top = max(counts.values())
    assert all(n >= top - 1 or n == Counter(labels)[c] for c, n in counts.items())


def test_missing_label_orders_last() -> None:
    from policies._pick import MISSING_LABEL, fill_missing_labels, sorted_counts

    v = fill_missing_labels(np.array(["b", None, "a"], dtype=object))
    assert v[1] is MISSING_LABEL
    assert list(sorted_counts({MISSING_LABEL: 1, "b": 1, "a": 2})) == ["a", "b", MISSING_LABEL]
    assert np.unique(v).tolist() == ["a", "b", MISSING_LABEL]
