"""``ClassBalanced`` over a nested label column (fixed-size list, list, struct), with or without
a null: refused with ``InvalidArgumentError`` naming the label column and the label types, on the
single-process path and the Ray path alike, instead of a bare ``ValueError`` from a reshape."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from policies import ClassBalanced, SelectionContext
from policies._columns import column_to_numpy
from policies.class_balanced import LABEL_TYPES

_NESTED = {
    "fixed_size_list_with_null": pa.array([[1, 2], None, [3, 4], [1, 2]], type=pa.list_(pa.int64(), 2)),
    "fixed_size_list": pa.array([[1, 2], [1, 2], [3, 4], [3, 4]], type=pa.list_(pa.int64(), 2)),
    "list": pa.array([[1], [1, 2], None, [3]], type=pa.list_(pa.int64())),
    "struct": pa.array([{"a": 1}, {"a": 2}, None, {"a": 1}], type=pa.struct([("a", pa.int64())])),
}


def _store(labels: pa.Array) -> tuple[Store, int]:
    store = Store.open(f"memory://nested-labels-{uuid.uuid4().hex}", create=True)
    n = len(labels)
    v = store.append(pa.table({"key": np.arange(n), "ts": np.arange(n), "label": labels})).version
    return store, v


@pytest.mark.parametrize("kind", list(_NESTED))
@pytest.mark.parametrize("budget", [{"limit": 2}, {"ratio": 0.5}])
def test_class_balanced_refuses_nested_labels(kind: str, budget: dict) -> None:  # type: ignore[type-arg]
    store, v = _store(_NESTED[kind])
    with pytest.raises(InvalidArgumentError) as err:
        ClassBalanced(**budget).select(SelectionContext(snapshot=store.as_of(v)))
    assert err.value.name == "label"
    assert err.value.expected == LABEL_TYPES
    assert store.version == v  # nothing written


def test_class_balanced_ray_path_refuses_nested_labels() -> None:
    """The Ray path checks the label type before it reads anything (no Ray session needed)."""
    pytest.importorskip("ray")
    from modyn_store.app.pipeline.ray_quota import class_balanced_on_ray

    store, v = _store(_NESTED["fixed_size_list_with_null"])
    with pytest.raises(InvalidArgumentError) as err:
        class_balanced_on_ray(ClassBalanced(limit=2), SelectionContext(snapshot=store.as_of(v)))
    assert err.value.name == "label"


def test_column_to_numpy_fixed_size_list_with_null_names_the_row() -> None:
    col = pa.array([[1.0, 2.0], [3.0, 4.0], None], type=pa.list_(pa.float64(), 2))
    with pytest.raises(InvalidArgumentError) as err:
        column_to_numpy(col, name="embedding")
    assert err.value.name == "embedding[2]"
    ok = pa.array([[1.0, 2.0], [3.0, 4.0]], type=pa.list_(pa.float64(), 2))
    assert column_to_numpy(ok).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    chunked = pa.chunked_array([ok, pa.array([None], type=ok.type)])
    with pytest.raises(InvalidArgumentError, match=r"col\[2\]"):
        column_to_numpy(chunked, name="col")
