"""Masked entries and float keys given to the cache registry and the vector index are refused:
NumPy drops a mask (the hidden values would be used) and a cast truncates 1.7 to key 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import InvalidArgumentError, Store
from modyn_store.core.vectors import VectorIndex


def test_the_cache_registry_refuses_float_and_masked_keys(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(4)}))
    for keys in ([1.7, 2.0], np.ma.array([1, 2], mask=[False, True])):
        with pytest.raises(InvalidArgumentError, match="keys"):
            store.caches.register("e1", keys, folders=["e1"])
        with pytest.raises(InvalidArgumentError, match="keys"):
            store.caches.holding(keys)
    assert store.caches.entries() == []
    store.caches.register("e1", [1, 2], folders=["e1"])
    assert store.caches.holding([2]) == ["e1"] and store.caches.holding([3]) == []


def test_the_vector_index_refuses_masked_keys_vectors_and_queries() -> None:
    vectors = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    with pytest.raises(InvalidArgumentError, match="keys"):
        VectorIndex.from_arrays(np.ma.array([0, 1, 2], mask=[False, False, True]), vectors, kind="exact")
    with pytest.raises(InvalidArgumentError, match="vectors"):
        VectorIndex.from_arrays([0, 1, 2], np.ma.array(vectors, mask=[[0, 0], [0, 0], [1, 1]]), kind="exact")
    index = VectorIndex.from_arrays([0, 1, 2], vectors, kind="exact")
    with pytest.raises(InvalidArgumentError, match="keys"):
        index.vectors(np.ma.array([0, 2], mask=[False, True]))
    with pytest.raises(InvalidArgumentError, match="queries"):
        index.search(np.ma.array([[5.0, 5.0]], mask=[[1, 1]]), k=1)
    assert index.vectors([0, 2]).tolist() == [[0.0, 0.0], [5.0, 5.0]]


@pytest.mark.parametrize("keys", [np.array([3000], "timedelta64[ms]").astype("timedelta64[s]"),
                                  pa.array([3], pa.duration("s"))], ids=["numpy", "arrow"])
def test_durations_are_refused_as_keys_and_as_scores(tmp_path: Path, keys: object) -> None:
    """NumPy counts timedelta64 as an integer type: 3000 ms in seconds was key 3 (taken,
    deleted, erased), and a duration score was stored as a number in its unit."""
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(4)}))
    before = store.version
    with pytest.raises(InvalidArgumentError, match="keys"):
        store.as_of(None).take(keys, ["key"])
    with pytest.raises(InvalidArgumentError, match="keys"):
        store.delete(keys)
    with pytest.raises(InvalidArgumentError, match="values"):
        store.scores.write("loss", [3], np.array([1500], "timedelta64[ms]"))
    with pytest.raises(InvalidArgumentError, match="values"):
        store.scores.write("loss", [3], pa.array([1500], pa.duration("ms")))
    assert store.version == before and store.as_of(None).keys().tolist() == [0, 1, 2, 3]


def test_durations_are_refused_as_train_set_weights() -> None:
    """A timedelta64 is an integer type to NumPy: its unit set the weight (3000 ms weighed 3)."""
    from modyn_store.core.trainset import TrainSet

    with pytest.raises(InvalidArgumentError) as info:
        TrainSet(keys=np.arange(2), weights=np.array([3000, 1000], "timedelta64[ms]").astype("timedelta64[s]"), version=1)
    assert info.value.name == "weights"
