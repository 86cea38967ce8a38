"""Vector index answers after erasure, for unknown keys and for bad queries."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.vectors import VectorIndex


def _line_store(name: str, n: int = 30) -> Store:
    store = Store.open(f"memory://{name}", create=True)
    store.append(pa.table({"ts": np.arange(n)}))
    store.scores.write("embedding", np.arange(n), np.stack([np.arange(n, dtype=float), np.zeros(n)], axis=1))
    return store


def test_search_after_erasing_many_nearest_still_returns_k_live_keys() -> None:
    store = _line_store("vec-many-erased")
    index = VectorIndex.from_store(store, "embedding")
    store.erase(list(range(10)), reason="request")
    keys, dist = index.search(np.array([[0.0, 0.0], [29.0, 0.0]]), k=5)
    assert keys.tolist() == [[10, 11, 12, 13, 14], [29, 28, 27, 26, 25]]
    assert dist[0].tolist() == [100.0, 121.0, 144.0, 169.0, 196.0]


def test_search_pads_only_when_fewer_live_keys_exist() -> None:
    store = _line_store("vec-few-live", n=12)
    index = VectorIndex.from_store(store, "embedding")
    store.erase(list(range(10)), reason="request")
    keys, dist = index.search(np.array([[0.0, 0.0]]), k=4)
    assert keys.tolist() == [[10, 11, -1, -1]]
    assert np.isinf(dist[0, 2:]).all()


def test_soft_delete_after_the_build_keeps_the_key_at_the_index_version() -> None:
    store = _line_store("vec-soft")
    index = VectorIndex.from_store(store, "embedding")
    store.delete(keys=[0])
    assert index.search(np.array([[0.0, 0.0]]), k=1)[0].tolist() == [[0]]
    later = VectorIndex.from_store(store, "embedding")
    assert later.search(np.array([[0.0, 0.0]]), k=1)[0].tolist() == [[1]]


def test_vectors_of_a_key_not_in_the_index_is_refused() -> None:
    index = VectorIndex.from_arrays([0, 2, 4], np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0]]))
    assert index.vectors([4, 0]).tolist() == [[4.0, 0.0], [0.0, 0.0]]
    for missing in ([1], [5], [-1]):
        with pytest.raises(InvalidArgumentError, match="keys"):
            index.vectors(missing)


def test_vectors_of_an_erased_key_is_refused() -> None:
    store = _line_store("vec-erased-vector")
    index = VectorIndex.from_store(store, "embedding")
    store.erase([3], reason="request")
    with pytest.raises(InvalidArgumentError, match="keys"):
        index.vectors([3])


def test_non_finite_queries_are_refused() -> None:
    index = VectorIndex.from_arrays([0, 1], np.array([[0.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(InvalidArgumentError, match="queries"):
        index.search(np.array([[np.nan, 0.0]]), k=1)
