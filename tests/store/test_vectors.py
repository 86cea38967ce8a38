"""Vector search over versioned embeddings (LanceDB) and snapshot copies to LanceDB tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.vectors import VectorIndex, snapshot_table

pytest.importorskip("lancedb")


def _store(tmp_path, n: int = 1200, d: int = 8):  # type: ignore[no-untyped-def]
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(n), "label": np.arange(n) % 2, "text": [f"row {i}" for i in range(n)]}))
    emb = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    store.scores.write("embedding", np.arange(n), emb)
    return store, emb


@pytest.mark.parametrize("kind", ["exact", "ivf_pq", "hnsw"])
def test_index_answers_as_of_its_version(tmp_path, kind: str) -> None:  # type: ignore[no-untyped-def]
    store, emb = _store(tmp_path)
    v = store.version
    index = VectorIndex.from_store(store, "embedding", v, kind=kind, num_partitions=8, nprobes=8)
    assert index.kind == kind and len(index) == 1200
    keys, _ = index.search(emb[[5, 6, 7]], k=3)
    assert keys[:, 0].tolist() == [5, 6, 7]
    far = np.full((1, 8), 50.0, np.float32)
    store.scores.write("embedding", [6], far)  # written later: the index keeps the old vector
    store.append(pa.table({"ts": [5000], "label": [0], "text": ["new"]}))
    store.scores.write("embedding", [1200], far * 1.01)  # a key inserted later
    store.erase([5], reason="test")  # erased after the index was built
    keys, dist = index.search(np.vstack([emb[5], emb[6], far[0]]), k=3)
    assert 5 not in keys and keys[1, 0] == 6
    assert 1200 not in keys[2] and 6 not in keys[2]
    assert np.all(np.diff(dist, axis=1) >= 0)
    later = VectorIndex.from_store(store, "embedding", kind=kind, num_partitions=8, nprobes=8)
    keys, _ = later.search(far, k=2)
    assert sorted(keys[0].tolist()) == [6, 1200]  # the latest version sees both new vectors
    index.close()
    later.close()


def test_approximate_recall_against_exact(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(20, 16)) * 4
    vec = (centers[rng.integers(0, 20, 5000)] + rng.normal(size=(5000, 16))).astype(np.float32)
    exact = VectorIndex.from_arrays(np.arange(5000), vec, kind="exact")
    approx = VectorIndex.from_arrays(np.arange(5000), vec, kind="ivf_pq", num_partitions=32, nprobes=8)
    q = vec[rng.choice(5000, 100, replace=False)] + 0.1
    want, wd = exact.search(q, k=10)
    got, _ = approx.search(q, k=10)
    recall = np.mean([np.intersect1d(a, b).size / 10 for a, b in zip(got, want)])
    assert recall >= 0.9
    ref = ((q[:, None, :] - vec[None]) ** 2).sum(axis=2)
    np.testing.assert_allclose(wd, np.sort(ref, axis=1)[:, :10], rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(exact.vectors([3, 1]), vec[[3, 1]])
    np.testing.assert_array_equal(approx.vectors([3, 1]), vec[[3, 1]])
    approx.close()


def test_snapshot_table_is_a_copy_as_of_its_version(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store, _ = _store(tmp_path, n=300)
    v = store.version
    store.append(pa.table({"ts": [1000], "label": [1], "text": ["later"]}))
    store.delete(keys=[0, 1])
    t = snapshot_table(store.as_of(v), str(tmp_path / "ldb"))
    assert t.count_rows() == 300 and t.count_rows("label = 1") == 150
    from lancedb.index import FTS

    t.create_index("text", config=FTS())
    hits = t.search("row 42", query_type="fts").limit(300).to_arrow().column("key").to_pylist()
    assert 42 in hits
    assert snapshot_table(store.as_of(None), str(tmp_path / "ldb")).count_rows() == 299


def test_bad_input_is_a_store_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError, match="kind"):
        VectorIndex.from_arrays([1, 2], np.zeros((2, 2)), kind="annoy")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="keys"):
        VectorIndex.from_arrays([1, 1], np.zeros((2, 2)))
    idx = VectorIndex.from_arrays([1, 2], np.zeros((2, 2)))
    with pytest.raises(InvalidArgumentError, match="queries"):
        idx.search(np.zeros((1, 3)))
    with pytest.raises(InvalidArgumentError, match="k"):
        idx.search(np.zeros((1, 2)), k=0)


@pytest.mark.parametrize("keys", [[1.7], np.array([True]), ["1"]], ids=["float", "bool", "text"])
def test_vectors_of_keys_that_are_not_integers_are_refused(keys: object) -> None:
    """``vectors([1.7])`` truncated the key and answered key 1's vector."""
    idx = VectorIndex.from_arrays([1, 2], np.array([[1.0, 0.0], [2.0, 0.0]]))
    with pytest.raises(InvalidArgumentError, match="keys"):
        idx.vectors(keys)
    assert idx.vectors([2]).tolist() == [[2.0, 0.0]]


def test_null_or_ragged_vectors_and_queries_are_typed_errors() -> None:
    """A null vector in an Arrow column and ragged rows raised a bare ValueError."""
    nulls = pa.array([[1.0, 2.0], None, [3.0, 4.0]], pa.list_(pa.float32(), 2))
    with pytest.raises(InvalidArgumentError, match="vectors"):
        VectorIndex.from_arrays([0, 1, 2], nulls)
    with pytest.raises(InvalidArgumentError, match="vectors"):
        VectorIndex.from_arrays([0, 1], [[1.0, 2.0], [3.0]])
    idx = VectorIndex.from_arrays([0, 1], np.array([[0.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(InvalidArgumentError, match="queries"):
        idx.search([[1.0, 2.0], [3.0]], k=1)


def test_a_uri_in_a_stores_folder_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A table written in a store's folder is read by the store as one of its own: a copy named
    ``samples`` replaced the store's rows, and another one became an extension table."""
    store, emb = _store(tmp_path, n=300)
    root = tmp_path / "s"
    listing = sorted(p.name for p in root.iterdir())
    for uri in (root, root / "ldb"):
        with pytest.raises(InvalidArgumentError, match="uri"):
            snapshot_table(store.as_of(None), str(uri), name="samples", columns=["ts"])
        with pytest.raises(InvalidArgumentError, match="uri"):
            VectorIndex.from_store(store, "embedding", kind="ivf_pq", uri=str(uri))
    assert sorted(p.name for p in root.iterdir()) == listing
    reopened = Store.open(str(root))
    assert reopened.as_of(None).count() == 300 and reopened._tables.names() == store._tables.names()
