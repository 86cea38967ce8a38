"""Edges of embedding-space selection: exact search against a float64 brute force, its tie rule
and memory, Coverage with duplicated embeddings, KCenterGreedy's embedding source, and typed
errors for malformed embeddings."""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.vectors import VectorIndex
from policies import SelectionContext
from policies.coverage import Coverage
from policies.kcenter import KCenterGreedy
from policies.near_duplicates import NearDuplicates


def brute(base: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows by (float64 squared distance, row) and their distances."""
    b, qq = base.astype(np.float64), np.asarray(q, dtype=np.float64)
    d2 = ((qq[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    idx = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(d2, idx, 1)


def snapshot(n: int, name: str) -> Any:
    store = Store.open(f"memory://vector-edges-{name}", create=True)
    return store, store.as_of(store.append(pa.table({"key": np.arange(n), "ts": np.arange(n)})).version)


@pytest.mark.parametrize("norm", [1.0, 80.0, 400.0])
def test_exact_search_matches_float64_brute_force(norm: float) -> None:
    rng = np.random.default_rng(int(norm))
    n, d = 300, 16
    base = (rng.normal(size=(n, d)) + norm / np.sqrt(d)).astype(np.float32)
    queries = np.concatenate([base[:50], base[:50] + rng.normal(size=(50, d)) * 0.01])
    nn, dist = VectorIndex.from_arrays(np.arange(n), base, kind="exact").search(queries, k=7)
    exp, exp_d = brute(base, queries, 7)
    assert (nn == exp).all()
    np.testing.assert_allclose(dist, exp_d, rtol=1e-12, atol=1e-12)
    assert (dist[:50, 0] == 0.0).all()  # a stored vector is at distance 0 from itself


def test_near_duplicates_exact_at_large_norms() -> None:
    pts = np.full((2, 16), 100.0, dtype=np.float32)
    pts[1, 0] += 0.02  # 0.02 apart: not within radius 0.01
    _, snap = snapshot(2, "pair")
    ctx = SelectionContext(snapshot=snap, computed_scores={"embedding": (np.arange(2), pts)})
    assert NearDuplicates(radius=0.01).select(ctx).keys.tolist() == [0, 1]
    assert NearDuplicates(radius=0.03).select(ctx).keys.tolist() == [0]


@pytest.mark.parametrize("scale, radius", [(1.0, 0.05), (3.0, 0.05), (10.0, 0.1)])
def test_near_duplicates_matches_brute_force(scale: float, radius: float) -> None:
    rng = np.random.default_rng(7)
    n, d = 200, 64
    base = np.abs(rng.normal(size=(n // 2, d))) * scale
    emb = np.concatenate([base, base + rng.normal(size=base.shape) * radius / np.sqrt(d)]).astype(np.float32)
    e = emb.astype(np.float64)
    dist = np.sqrt(((e[:, None] - e[None]) ** 2).sum(-1))
    expected = [i for i in range(n) if not (dist[i, :i] <= radius).any()]
    _, snap = snapshot(n, f"fuzz-{scale}")
    ctx = SelectionContext(snapshot=snap, computed_scores={"embedding": (np.arange(n), emb)})
    assert NearDuplicates(radius=radius, k=n).select(ctx).keys.tolist() == expected


def test_exact_search_memory_is_bounded() -> None:
    n = 4000
    emb = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
    index = VectorIndex.from_arrays(np.arange(n), emb)
    tracemalloc.start()
    try:
        index.search(emb, k=5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 96 * 2**20  # the full [4000, 4000] matrices took ~185 MiB


def test_exact_search_chunks_give_identical_results(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 4, size=(500, 3)).astype(np.float32)  # many exact ties
    q = rng.normal(size=(60, 3)) + 1.5
    whole = VectorIndex.from_arrays(np.arange(500), base).search(q, k=9)
    monkeypatch.setattr("modyn_store.core._knn._CHUNK", 1000)  # two queries per block
    chunked = VectorIndex.from_arrays(np.arange(500), base).search(q, k=9)
    assert (whole[0] == chunked[0]).all() and (whole[1] == chunked[1]).all()
    assert (whole[0] == brute(base, q, 9)[0]).all()


def test_exact_search_ties_go_to_the_lower_index() -> None:
    rng = np.random.default_rng(1)
    for _ in range(40):
        n = int(rng.integers(5, 300))
        base = rng.integers(0, 3, size=(n, 2)).astype(np.float32)
        q = rng.integers(0, 3, size=(4, 2)).astype(np.float32)
        k = int(rng.integers(1, n))
        nn, dist = VectorIndex.from_arrays(np.arange(n), base, kind="exact").search(q, k=k)
        exp, exp_d = brute(base, q, k)
        assert (nn == exp).all()
        assert (dist == exp_d).all()
    same = np.zeros((300, 4), dtype=np.float32)  # all identical: the lowest indices
    nn, _ = VectorIndex.from_arrays(np.arange(300), same).search(same[:3], k=5)
    assert nn.tolist() == [[0, 1, 2, 3, 4]] * 3


def test_coverage_neighbourhoods_with_duplicate_embeddings() -> None:
    keys = np.arange(4)
    emb = np.array([[0.0], [2.0], [2.0], [2.0]], np.float32)
    _, snap = snapshot(4, "coverage")
    ctx = SelectionContext(snapshot=snap, computed_scores={"embedding": (keys, emb)})
    # hoods (self + 1 nearest other, ties: smaller key): 0:{0,1} 1:{1,2} 2:{2,1} 3:{3,1};
    # 0 covers 2 new; then every row covers one new: the smallest key, 1
    assert Coverage(limit=2, k=1).select(ctx).keys.tolist() == [0, 1]


def test_kcenter_prefers_a_stored_embedding_score_over_embed() -> None:
    n = 20
    store, _ = snapshot(n, "kcenter")
    x = np.zeros((n, 2), np.float32)
    x[:, 0] = np.arange(n)
    store.scores.write("embedding", np.arange(n), x)
    snap = store.as_of(store.version)
    calls: list[int] = []

    def embed(keys: Any) -> np.ndarray:
        calls.append(len(keys))
        return np.zeros((len(keys), 2))

    got = KCenterGreedy(limit=3).select(SelectionContext(snapshot=snap, scores=store.scores, embed=embed, seed=0))
    plain = KCenterGreedy(limit=3).select(SelectionContext(snapshot=snap, scores=store.scores, seed=0))
    assert calls == []
    assert got.keys.tolist() == plain.keys.tolist()


BAD_EMBEDDINGS = {
    "ragged batches": lambda n, x: lambda: iter([(np.arange(n // 2), x[: n // 2]),
                                                (np.arange(n // 2, n), np.zeros((n - n // 2, 3)))]),
    "3-D values": lambda n, x: (np.arange(n), np.zeros((n, 2, 2))),
    "zero width": lambda n, x: (np.arange(n), np.zeros((n, 0))),
}


@pytest.mark.parametrize("case", sorted(BAD_EMBEDDINGS))
@pytest.mark.parametrize("strategy", [KCenterGreedy(limit=3), NearDuplicates(), Coverage(limit=3, k=2)],
                         ids=lambda s: type(s).__name__)
def test_malformed_embeddings_are_refused(case: str, strategy: Any) -> None:
    n = 20
    x = np.zeros((n, 2), np.float32)
    x[:, 0] = np.arange(n)
    _, snap = snapshot(n, f"bad-{case}-{type(strategy).__name__}")
    ctx = SelectionContext(snapshot=snap, computed_scores={"embedding": BAD_EMBEDDINGS[case](n, x)})
    with pytest.raises(InvalidArgumentError, match="embedding"):
        strategy.select(ctx)


@pytest.mark.parametrize("call, name", [
    (lambda: VectorIndex.from_arrays([0, 1, 2, 3], pa.FixedSizeListArray.from_arrays(
        pa.array(np.zeros(6, np.float32)), 2)), "vectors"),
    (lambda: VectorIndex.from_arrays([0.5, 1.5], np.zeros((2, 2))), "keys"),
    (lambda: VectorIndex.from_arrays([0], [["a", "b"]]), "vectors"),
    (lambda: VectorIndex.from_arrays([0, 1], np.zeros((2, 0))), "vectors"),
    (lambda: VectorIndex.from_arrays([0, 1], np.zeros((2, 2))).search(["a", "b"], k=1), "queries"),
], ids=["arrow length", "float keys", "string vectors", "zero width", "string query"])
def test_vector_index_refuses_bad_inputs(call: Any, name: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"invalid {name}"):
        call()


@pytest.mark.parametrize("limit", [2, 20, 50])
def test_kcenter_refuses_non_finite_embeddings_whatever_its_limit(limit: int) -> None:
    """A NaN embedding is refused, naming where it came from and its key, also when the limit
    keeps every row (no greedy pass runs); it passed then."""
    n = 20
    _, snap = snapshot(n, f"kcenter-nan-{limit}")
    emb = np.ones((n, 2))
    emb[7, 1] = np.nan
    computed = SelectionContext(snapshot=snap, computed_scores={"embedding": (np.arange(n), emb)})
    with pytest.raises(InvalidArgumentError, match="key 7") as e:
        KCenterGreedy(limit=limit).select(computed)
    assert e.value.name == "score 'embedding'"
    embedded = SelectionContext(snapshot=snap, embed=lambda keys: emb[np.asarray(keys)])
    with pytest.raises(InvalidArgumentError, match="key 7") as e:
        KCenterGreedy(limit=limit).select(embedded)
    assert e.value.name == "ctx.embed(keys)"
