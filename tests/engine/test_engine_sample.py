"""Uniform, weighted and reservoir sampling: exact references, streaming, and distributions."""

from __future__ import annotations

import naive
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import (
    EngineInputError,
    Reservoir,
    UniformSampler,
    WeightedSampler,
    reservoir_sample,
    uniform_sample,
    weighted_sample,
)


def _chunks(rng: np.random.Generator, n: int, parts: int = 6) -> list[np.ndarray]:
    return np.split(np.arange(n), np.sort(rng.integers(0, n + 1, parts)))


# --------------------------------------------------------------------------------------- uniform


@pytest.mark.parametrize("seed", range(8))
def test_uniform_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 500))
    keys = rng.permutation(10 * n + 1)[:n] - 5 * n if seed % 2 else None  # negative keys too
    for k in (0, 1, n // 3, n, n + 3):
        got = uniform_sample(n, k, seed=seed, keys=keys)
        assert got.tolist() == naive.uniform_sample(n, k, seed, keys)


def test_uniform_deterministic_and_seed_sensitive() -> None:
    a = uniform_sample(10_000, 100, seed=42)
    assert np.array_equal(a, uniform_sample(10_000, 100, seed=42))
    assert not np.array_equal(a, uniform_sample(10_000, 100, seed=43))
    assert np.unique(a).size == 100


@pytest.mark.parametrize("seed", range(4))
def test_uniform_streaming_equals_one_shot(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 1_200_000 if seed == 0 else 5000  # the large one: sampled threshold, parallel pass
    keys = rng.permutation(2 * n)[:n]
    k = 2000
    s_keys, s_rows = UniformSampler(k, seed=seed), UniformSampler(k, seed=seed)
    for part in _chunks(rng, n):
        s_keys.update(keys[part])
        s_rows.update(n=part.size)
    assert s_keys.result().tolist() == np.sort(keys[uniform_sample(n, k, seed=seed, keys=keys)]).tolist()
    assert s_rows.result().tolist() == uniform_sample(n, k, seed=seed).tolist()
    assert s_rows.n_seen == n


@pytest.mark.parametrize("seed", range(6))
def test_uniform_result_of_a_smaller_size_equals_that_sampler(seed: int) -> None:
    # one pass with an upper bound K of the size, the size k decided at the end
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6000))
    keys = rng.permutation(3 * n)[:n]
    big = int(rng.integers(1, n + 50))
    s_big = UniformSampler(big, seed=seed)
    for part in _chunks(rng, n):
        s_big.update(keys[part])
    for k in sorted({0, 1, big // 3, big - 1, big} - {-1}):
        small = UniformSampler(k, seed=seed)
        for part in _chunks(rng, n):
            small.update(keys[part])
        assert s_big.result(k).tolist() == small.result().tolist(), (n, big, k)
    with pytest.raises(EngineInputError):
        s_big.result(big + 1)


def test_uniform_inclusion_is_uniform() -> None:
    # Every item is included with probability k/n: chi-square over 2000 seeded draws.
    n, k, reps = 50, 10, 2000
    counts = np.zeros(n)
    for r in range(reps):
        counts[uniform_sample(n, k, seed=r)] += 1
    p = scipy.stats.chisquare(counts).pvalue
    assert p > 1e-3, p


def test_uniform_chunked_distribution_matches_numpy() -> None:
    # Same inclusion distribution as Generator.choice(replace=False): two-sample chi-square.
    n, k, reps = 40, 7, 1500
    ours, theirs = np.zeros(n), np.zeros(n)
    gen = np.random.default_rng(123)
    for r in range(reps):
        s = UniformSampler(k, seed=r + 10_000)
        for part in np.array_split(np.arange(n), 3):
            s.update(part)
        ours[s.result()] += 1
        theirs[gen.choice(n, k, replace=False)] += 1
    p = scipy.stats.chi2_contingency(np.stack([ours, theirs])).pvalue
    assert p > 1e-3, p


# -------------------------------------------------------------------------------------- weighted


@pytest.mark.parametrize("seed", range(8))
def test_weighted_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 400))
    w = rng.exponential(size=n)
    w[rng.random(n) < 0.2] = 0.0  # zero = never pick
    keys = rng.permutation(5 * n + 1)[:n] if seed % 2 else None
    for k in (0, 1, n // 4, n, n + 1):
        idx, iw = weighted_sample(w, k, seed=seed, keys=keys, return_importance=True)
        ref_idx, ref_iw = naive.weighted_sample(w, k, seed, keys)
        assert idx.tolist() == ref_idx
        np.testing.assert_allclose(iw, ref_iw, rtol=1e-12)
        assert np.array_equal(weighted_sample(w, k, seed=seed, keys=keys), idx)


@pytest.mark.parametrize("k", [1, 700, 40_000])
def test_weighted_large_input_matches_reference(k: int) -> None:
    # Large enough for the sampled threshold and the kernel's log-free shortcut (u - 1 < T w);
    # weights over 60 orders of magnitude, with zeros.
    rng = np.random.default_rng(k)
    n = 120_000
    w = 10.0 ** rng.uniform(-30, 30, n)
    w[rng.random(n) < 0.05] = 0.0
    w[:100] = 1.0
    idx, iw = weighted_sample(w, k, seed=k, return_importance=True)
    ref_idx, ref_iw = naive.weighted_sample(w, k, k)
    assert idx.tolist() == ref_idx
    np.testing.assert_allclose(iw, ref_iw, rtol=1e-12)


def test_weighted_parallel_path_matches_reference_at_any_thread_count() -> None:
    # Just over 2^18 rows: hashed ranks go parallel from there; k = 50,000 leaves more candidates
    # than the radix select's cut-over, so the k-th rank comes from it.
    import numba

    k = 50_000
    rng = np.random.default_rng(k)
    n = (1 << 18) + 1000
    w = rng.uniform(0.0, 2.0, n)
    w[rng.random(n) < 0.02] = 0.0
    idx = weighted_sample(w, k, seed=k)
    assert idx.tolist() == naive.weighted_sample(w, k, k)[0]
    uni = uniform_sample(n, k, seed=k)
    assert uni.tolist() == naive.uniform_sample(n, k, k)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert np.array_equal(weighted_sample(w, k, seed=k), idx)
        assert np.array_equal(uniform_sample(n, k, seed=k), uni)
    finally:
        numba.set_num_threads(old)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 1e6), max_size=40), st.integers(0, 45), st.integers(0, 2**64 - 1))
def test_weighted_property(w: list[float], k: int, seed: int) -> None:
    idx = weighted_sample(np.array(w, dtype=np.float64), k, seed=seed)
    assert idx.tolist() == naive.weighted_sample(w, k, seed)[0]


def test_weighted_edge_cases() -> None:
    assert weighted_sample(np.array([]), 3, seed=0).tolist() == []
    assert weighted_sample([0.0, 0.0], 1, seed=0).tolist() == []
    assert weighted_sample([0.0, 2.0, 0.0], 5, seed=0).tolist() == [1]
    idx, iw = weighted_sample([1.0, 1.0, 1.0, 1.0], 4, seed=0, return_importance=True)
    assert idx.tolist() == [0, 1, 2, 3] and iw.tolist() == [1.0] * 4


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf, -np.inf])
def test_weighted_rejects_bad_weights(bad: float) -> None:
    with pytest.raises(EngineInputError) as err:
        weighted_sample([1.0, bad, 2.0], 1, seed=0)
    assert err.value.name == "weights[1]"
    assert "finite weights >= 0" in str(err.value)
    with pytest.raises(EngineInputError):
        WeightedSampler(1, seed=0).update([bad])


def test_weighted_rejects_bad_k_and_seed() -> None:
    with pytest.raises(EngineInputError, match="invalid k=-1"):
        weighted_sample([1.0], -1, seed=0)
    with pytest.raises(EngineInputError, match="seed"):
        weighted_sample([1.0], 1, seed=1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(4))
def test_weighted_streaming_equals_one_shot(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 1_200_000 if seed == 0 else 4000  # one-shot parallel vs serial chunks
    w = rng.pareto(1.5, n)
    w[rng.random(n) < 0.1] = 0.0
    k = 3000 if seed == 0 else 300
    ref_idx, ref_iw = weighted_sample(w, k, seed=seed, return_importance=True)
    s = WeightedSampler(k, seed=seed)
    for part in _chunks(rng, n):
        s.update(w[part])
    got, iw = s.result(return_importance=True)
    assert got.tolist() == ref_idx.tolist()
    np.testing.assert_allclose(iw, ref_iw, rtol=1e-9)


def test_weighted_distribution_matches_numpy_choice() -> None:
    # Successive sampling, like Generator.choice(replace=False, p=w/sum(w)): compare inclusion
    # counts over many seeds with a two-sample chi-square test.
    w = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 8.0, 0.5, 0.25])
    k, reps = 3, 4000
    ours, theirs = np.zeros(w.size), np.zeros(w.size)
    gen = np.random.default_rng(7)
    for r in range(reps):
        ours[weighted_sample(w, k, seed=r)] += 1
        theirs[gen.choice(w.size, k, replace=False, p=w / w.sum())] += 1
    p = scipy.stats.chi2_contingency(np.stack([ours, theirs])).pvalue
    assert p > 1e-3, p


def test_weighted_single_draw_probabilities() -> None:
    w = np.array([1.0, 2.0, 3.0, 4.0])
    counts = np.bincount(np.concatenate([weighted_sample(w, 1, seed=r) for r in range(8000)]), minlength=4)
    p = scipy.stats.chisquare(counts, 8000 * w / w.sum()).pvalue
    assert p > 1e-3, p


# ------------------------------------------------------------------------------------- reservoir


@pytest.mark.parametrize("seed", range(6))
def test_reservoir_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 3000))
    items = rng.integers(-(10**12), 10**12, n)
    for k in (0, 1, 5, n, n + 2):
        assert reservoir_sample(items, k, seed=seed).tolist() == naive.reservoir(items.tolist(), k, seed)


@pytest.mark.parametrize("seed", range(5))
def test_reservoir_chunking_invariant(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 20_000
    items = np.arange(n) * 3
    ref = reservoir_sample(items, 50, seed=seed)
    r = Reservoir(50, seed=seed)
    for part in _chunks(rng, n, parts=20):
        r.update(items[part])
    assert r.result().tolist() == ref.tolist()
    assert r.n_seen == n


def test_reservoir_inclusion_is_uniform() -> None:
    n, k, reps = 60, 6, 3000
    counts = np.zeros(n)
    for r in range(reps):
        counts[reservoir_sample(np.arange(n), k, seed=r)] += 1
    p = scipy.stats.chisquare(counts).pvalue
    assert p > 1e-3, p


def test_reservoir_edge_cases() -> None:
    assert reservoir_sample([], 3, seed=0).tolist() == []
    assert reservoir_sample([4, 2], 3, seed=0).tolist() == [2, 4]
    assert reservoir_sample(iter([1, 2, 3]), 0, seed=0).tolist() == []
    with pytest.raises(EngineInputError, match="items"):
        Reservoir(2, seed=0).update([1.5])
    with pytest.raises(EngineInputError, match="exactly one of keys and n"):
        UniformSampler(2, seed=0).update()


@pytest.mark.parametrize("merge_min", [1, 7, 1 << 16])
def test_samplers_merge_lazily_to_the_one_shot_answer(merge_min: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # pending chunk candidates are merged only when they outnumber the kept rows; however
    # often that happens, the answer is the one-shot sample (and the importance weights follow)
    from engine import _lazy as lazy_mod

    monkeypatch.setattr(lazy_mod.LazyBest, "MERGE_MIN", merge_min)
    rng = np.random.default_rng(merge_min)
    n = 20_000
    keys = rng.permutation(4 * n)[:n]
    w = rng.pareto(1.5, n)
    for k in (1, 50, 999):
        u, ws = UniformSampler(k, seed=5), WeightedSampler(k, seed=5)
        for part in _chunks(rng, n):
            u.update(keys[part])
            ws.update(w[part])
        assert u.result().tolist() == np.sort(keys[uniform_sample(n, k, seed=5, keys=keys)]).tolist()
        assert u.result(k // 2).tolist() == np.sort(keys[uniform_sample(n, k // 2, seed=5, keys=keys)]).tolist()
        ref, ref_iw = weighted_sample(w, k, seed=5, return_importance=True)
        got, iw = ws.result(return_importance=True)
        assert got.tolist() == ref.tolist()
        np.testing.assert_allclose(iw, ref_iw, rtol=1e-9)
        # streaming top-k shares the lazy merge
        from engine import TopK, top_k

        acc = TopK(k)
        for part in _chunks(rng, n):
            acc.update(w[part], keys=keys[part])
        top_keys, top_scores = acc.result()
        pos = top_k(w, k, keys=keys)
        assert top_keys.tolist() == keys[pos].tolist() and top_scores.tolist() == w[pos].tolist()
