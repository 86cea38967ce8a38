"""Greedy k-center against the obvious NumPy loop."""

from __future__ import annotations

import naive
import numpy as np
import pytest

from engine import EngineInputError, kcenter_greedy


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_reference(seed: int, dtype: type) -> None:
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(1, 400)), int(rng.integers(1, 20))
    emb = rng.normal(size=(n, d)).astype(dtype)
    initial = rng.choice(n, int(rng.integers(0, min(n, 4))), replace=False) if seed % 2 else None
    for k in (0, 1, 10, n):
        got = kcenter_greedy(emb, k, initial=initial, seed=seed)
        first = int(got[0]) if got.size and initial is None else None
        assert got.tolist() == naive.kcenter_greedy(emb, k, [] if initial is None else initial, first)


def test_ties_and_duplicates_are_deterministic() -> None:
    emb = np.array([[0.0], [0.0], [1.0], [1.0], [-1.0]])  # integer-valued: exact distances
    assert kcenter_greedy(emb, 5, initial=[0]).tolist() == [2, 4, 1, 3]
    import numba

    big = np.random.default_rng(0).integers(0, 3, size=(300_000, 2)).astype(np.float64)  # parallel
    a = kcenter_greedy(big, 30, seed=1)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        b = kcenter_greedy(big, 30, seed=1)
    finally:
        numba.set_num_threads(old)
    assert np.array_equal(a, b) and np.unique(a).size == 30


def test_seed_picks_first_center() -> None:
    emb = np.random.default_rng(1).normal(size=(100, 3))
    firsts = {int(kcenter_greedy(emb, 1, seed=s)[0]) for s in range(20)}
    assert len(firsts) > 5
    assert np.array_equal(kcenter_greedy(emb, 7, seed=3), kcenter_greedy(emb, 7, seed=3))


def test_edge_cases_and_errors() -> None:
    assert kcenter_greedy(np.zeros((0, 3)), 2).tolist() == []
    assert kcenter_greedy(np.zeros((3, 2)), 10, initial=[0, 1, 2]).tolist() == []
    with pytest.raises(EngineInputError, match="embeddings"):
        kcenter_greedy(np.array([[np.nan]]), 1)
    with pytest.raises(EngineInputError, match="initial"):
        kcenter_greedy(np.zeros((2, 2)), 1, initial=[2])
    with pytest.raises(EngineInputError, match="invalid k=-1"):
        kcenter_greedy(np.zeros((2, 2)), -1)
    with pytest.raises(EngineInputError, match="2-D"):
        kcenter_greedy(np.zeros(3), 1)
