"""Drift statistics against straightforward NumPy/SciPy implementations."""

from __future__ import annotations

from typing import Any

import naive
import numpy as np
import pytest
import scipy.stats

from engine import EngineInputError, _mmd, drift


def _pair(seed: int, n: int = 60, m: int = 45, d: int = 3, shift: float = 0.0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(shift, 1.0, size=(m, d))


@pytest.mark.parametrize("seed", range(5))
def test_mmd2_unbiased_matches_reference(seed: int) -> None:
    x, y = _pair(seed, shift=0.3 * seed)
    np.testing.assert_allclose(drift.mmd2_unbiased(x, y), naive.mmd2_unbiased(x, y), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(drift.mmd2_unbiased(x, y, bandwidth=0.7), naive.mmd2_unbiased(x, y, 0.7),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(drift.median_heuristic(x, y), naive.median_sigma(np.concatenate([x, y])), rtol=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_permutation_test_matches_reference(seed: int) -> None:
    x, y = _pair(seed, n=40, m=33, shift=0.15 * seed)
    perms = drift.permutations(73, 40, 99, seed)
    stat, p = drift.mmd_permutation_test(x, y, n_permutations=99, seed=seed)
    ref_stat, ref_p = naive.mmd_permutation_test(x, y, perms)
    np.testing.assert_allclose(stat, ref_stat, rtol=1e-9, atol=1e-12)
    assert p == ref_p


@pytest.mark.parametrize("seed", range(3))
def test_large_pools_match_the_matmul_reference(seed: int) -> None:
    """Pools past the bracketed-median threshold (>= 2^17 pairs) and past one row slab of the
    quadratic forms: the statistic, bandwidth and p-value of the plain NumPy version."""
    x, y = _pair(seed, n=700, m=610, d=4, shift=0.04 * seed)
    perms = drift.permutations(1310, 700, 60, seed)
    stat, p = drift.mmd_permutation_test(x, y, n_permutations=60, seed=seed)
    ref_stat, ref_p = naive.mmd_permutation_matmul(x, y, 60, seed, perms)
    np.testing.assert_allclose(stat, ref_stat, rtol=1e-9, atol=1e-12)
    assert p == ref_p
    z = np.concatenate([x, y])
    np.testing.assert_allclose(_mmd.pooled_kernel(z, None)[1], naive.median_sigma(z), rtol=1e-12)
    np.testing.assert_allclose(drift.mmd2_unbiased(x, y), ref_stat, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("bracket", [5.0, 0.0, -3.0])
def test_bracketed_median_is_exact_with_ties_and_when_the_bracket_misses(bracket: float,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Integer points: few distinct distances, so many ties at the bracket's edges; a zero or
    inverted bracket width forces the full-partition fallback."""
    monkeypatch.setattr(_mmd, "_BRACKET", bracket)
    rng = np.random.default_rng(7)
    for z in (rng.integers(0, 3, size=(900, 2)).astype(np.float64), rng.normal(size=(901, 3))):
        np.testing.assert_allclose(_mmd.pooled_kernel(z, None)[1], naive.median_sigma(z), rtol=1e-12)


@pytest.mark.parametrize("n", [1, 5, 511, 512, 513, 1500, 4099])
def test_quadratic_forms_equal_the_full_product(n: int) -> None:
    rng = np.random.default_rng(n)
    b = rng.normal(size=(n, n))
    k = b + b.T
    a = (rng.random((n, 7)) < 0.5).astype(np.float64)
    np.testing.assert_allclose(_mmd.quadratic_forms(k, a), np.einsum("ip,ip->p", a, k @ a), rtol=1e-9, atol=1e-9)


def test_permutations_are_fisher_yates_with_the_engine_stream() -> None:
    rng = naive.Stream(5)
    perm = list(range(10))
    expected = []
    for _ in range(3):
        for i in range(9, 0, -1):
            j = int(naive.to_open01(rng.u64()) * (i + 1))
            perm[i], perm[j] = perm[j], perm[i]
        expected.append(sorted(perm[:4]))
    assert drift.permutations(10, 4, 3, 5).tolist() == expected


def test_permutation_p_value_behaviour() -> None:
    x, y = _pair(0, n=150, m=150, shift=1.0)
    assert drift.mmd_permutation_test(x, y, n_permutations=200, seed=1).p_value == 1 / 201
    assert drift.mmd_permutation_test(x, y, n_permutations=0).p_value == 1.0
    ps = [drift.mmd_permutation_test(*_pair(100 + s, n=30, m=30), n_permutations=50, seed=s).p_value
          for s in range(60)]
    assert 0.3 < float(np.mean(ps)) < 0.7  # roughly uniform under the null
    assert drift.mmd_permutation_test(x, y, seed=3) == drift.mmd_permutation_test(x, y, seed=3)


def test_mmd_agrees_with_benchmark_baseline() -> None:
    x, y = _pair(3, n=80, m=80, d=4, shift=0.2)
    stat, _ = naive.mmd_permutation_numpy(x, y, 20, 0)
    np.testing.assert_allclose(drift.mmd2_unbiased(x, y), stat, rtol=1e-8)


@pytest.mark.parametrize("seed", range(4))
def test_linear_and_rff_match_reference(seed: int) -> None:
    x, y = _pair(seed, n=400, m=350, d=5, shift=0.5)
    sigma = naive.median_sigma(np.concatenate([x, y]))  # 750 pooled rows < 1000: no subsampling
    stat, p = drift.mmd2_linear(x, y)
    ref_stat, ref_p = naive.mmd2_linear(x, y, sigma)
    np.testing.assert_allclose([stat, p], [ref_stat, ref_p], rtol=1e-9, atol=1e-15)
    w, phase = drift.rff_features(5, 128, sigma, seed)
    np.testing.assert_allclose(drift.mmd2_rff(x, y, n_features=128, seed=seed), naive.mmd2_rff(x, y, w, phase),
                               rtol=1e-9, atol=1e-15)


def test_rff_approximates_exact_mmd() -> None:
    x, y = _pair(1, n=500, m=500, d=3, shift=0.8)
    exact = drift.mmd2_unbiased(x, y, bandwidth=1.5)
    approx = drift.mmd2_rff(x, y, n_features=4096, bandwidth=1.5, seed=0)
    assert abs(approx - exact) < 0.1 * exact + 0.01
    f = drift.rff_features(2, 20_000, 2.0, 0)[0]
    assert abs(f.std() - 0.5) < 0.01 and abs(f.mean()) < 0.01


@pytest.mark.parametrize("seed", range(6))
def test_ks_and_wasserstein_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 300)), int(rng.integers(1, 300))
    x = rng.integers(0, 20, n).astype(float) if seed % 2 else rng.normal(size=n)  # ties when integer
    y = rng.integers(0, 20, m).astype(float) if seed % 2 else rng.normal(0.3, 1.0, size=m)
    d, p = drift.ks_2samp(x, y)
    ref_d, ref_p = naive.ks_2samp(x, y)
    assert d == pytest.approx(ref_d, abs=1e-12)
    assert p == pytest.approx(ref_p, abs=1e-10)
    assert drift.wasserstein_1d(x, y) == pytest.approx(naive.wasserstein_1d(x, y), rel=1e-9, abs=1e-12)


def test_ks_p_value_close_to_scipy_for_large_samples() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=3000), rng.normal(0.05, 1.0, size=2500)
    assert abs(drift.ks_2samp(x, y).p_value - scipy.stats.ks_2samp(x, y, method="asymp").pvalue) < 0.01


def test_one_point_and_identical_samples() -> None:
    assert drift.ks_2samp([1.0], [1.0]) == (0.0, 1.0)
    assert drift.wasserstein_1d([3.0], [3.0]) == 0.0
    same = np.ones((5, 2))
    assert drift.mmd2_unbiased(same, same) == pytest.approx(0.0, abs=1e-12)  # median 0 -> bandwidth 1


def test_invalid_input() -> None:
    with pytest.raises(EngineInputError) as err:
        drift.ks_2samp([1.0, np.nan], [1.0])
    assert err.value.name == "x[1]"
    with pytest.raises(EngineInputError, match="at least one value"):
        drift.wasserstein_1d([], [1.0])
    with pytest.raises(EngineInputError, match="at least 2 rows"):
        drift.mmd2_unbiased(np.zeros((1, 2)), np.zeros((3, 2)))
    with pytest.raises(EngineInputError, match="columns"):
        drift.mmd_permutation_test(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(EngineInputError, match="bandwidth"):
        drift.mmd2_unbiased(np.zeros((3, 2)), np.zeros((3, 2)), bandwidth=0.0)
    with pytest.raises(EngineInputError, match="y\\[0, 1\\]"):
        drift.mmd2_linear(np.zeros((3, 2)), np.array([[0.0, np.inf], [0.0, 0.0]]))
    with pytest.raises(EngineInputError, match="n_permutations"):
        drift.mmd_permutation_test(np.zeros((3, 2)), np.zeros((3, 2)), n_permutations=-1)


@pytest.mark.parametrize("bandwidth", [1e-150, 1e-160, 1e-200])
def test_a_bandwidth_whose_square_underflows_gives_the_identity_kernel(bandwidth: float) -> None:
    # sigma^2 underflows to 0 (or 1 / (2 sigma^2) overflows): the kernel is 1 between equal
    # rows and 0 elsewhere, not NaN (a NaN statistic with a "significant" p-value) or a crash
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    x[1] = x[0]  # one pair of equal rows in x: sum K[X, X] off the diagonal is 2
    want = 2.0 / (10 * 9)
    assert drift.mmd2_unbiased(x, y, bandwidth=bandwidth) == pytest.approx(want, rel=1e-12)
    stat, p = drift.mmd_permutation_test(x, y, n_permutations=50, seed=0, bandwidth=bandwidth)
    perms = drift.permutations(20, 10, 50, 0)
    assert (stat, p) == pytest.approx(naive.mmd_permutation_test(x, y, perms, sigma=1e-20))  # identity too
    lin = drift.mmd2_linear(x, y, bandwidth=bandwidth)
    assert lin.statistic == pytest.approx(1.0 / 5)  # the pair (x0, x1) has h = 1, the others 0
    big = drift.mmd2_unbiased(x * 1e200, y * 1e200, bandwidth=2.5)  # rescaled below the square's range
    assert big == pytest.approx(want, rel=1e-12)


def test_counts_beyond_int64_are_refused_by_name() -> None:
    x = np.arange(6.0).reshape(3, 2)
    for n in (2**63, 2**70):
        with pytest.raises(EngineInputError) as err:
            drift.mmd_permutation_test(x, x + 1, n_permutations=n)
        assert err.value.name == "n_permutations"
        with pytest.raises(EngineInputError) as err:
            drift.mmd2_rff(x, x + 1, n_features=n)
        assert err.value.name == "n_features"


def test_permutations_tied_with_the_observed_split_count_as_equal() -> None:
    # binary features: the statistic depends only on how many ones each sample holds, so many
    # relabellings tie with the observed one exactly; computed from other sums they come out a
    # few ulps off it, and a strict >= dropped some (p = 0.062 where the exact one is 0.118)
    from fractions import Fraction

    def exact(c: int, tot: int, n: int, m: int, k01: Fraction) -> Fraction:
        def within(ones: int, size: int) -> Fraction:
            zeros = size - ones
            return (ones * (ones - 1) + zeros * (zeros - 1) + 2 * ones * zeros * k01) / (size * (size - 1))
        cy = tot - c
        cross = (c * cy + (n - c) * (m - cy) + (c * (m - cy) + (n - c) * cy) * k01) / Fraction(n * m)
        return within(c, n) + within(cy, m) - 2 * cross

    rng = np.random.default_rng(5)
    for trial in range(6):
        x = (rng.random((30, 1)) < 0.5).astype(float)
        y = (rng.random((30, 1)) < 0.6).astype(float)
        got = drift.mmd_permutation_test(x, y, n_permutations=500, seed=trial).p_value
        z = np.concatenate([x, y])[:, 0]
        sigma = drift.median_heuristic(x, y)
        k01 = Fraction(float(np.exp(-1.0 / (2.0 * sigma * sigma))))
        tot = int(z.sum())
        observed = exact(int(x.sum()), tot, 30, 30, k01)
        perms = drift.permutations(60, 30, 500, trial)
        hits = sum(exact(int(z[p].sum()), tot, 30, 30, k01) >= observed for p in perms)
        assert got == (1 + hits) / 501
    # two rows each: the observed split and its swap recur among the relabellings
    x, y = np.array([[0.0, 1.0], [2.0, 0.5]]), np.array([[1.0, 1.0], [0.3, 2.0]])
    stat, p = drift.mmd_permutation_test(x, y, n_permutations=200, seed=11)
    perms = drift.permutations(4, 2, 200, 11)
    same = sum(set(q.tolist()) in ({0, 1}, {2, 3}) for q in perms)
    assert p >= (1 + same) / 201


@pytest.mark.parametrize("bandwidth", [1e-308, 1e-310, 5e-324])
def test_rff_bandwidth_whose_frequencies_overflow_is_refused(bandwidth: float) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    with pytest.raises(EngineInputError) as err:  # was a NaN estimate
        drift.mmd2_rff(x, y, bandwidth=bandwidth)
    assert err.value.name == "bandwidth"
    assert np.isfinite(drift.mmd2_rff(x, y, bandwidth=1e-300))


@pytest.mark.parametrize("bandwidth", ["1", b"1", "nan", [1.0], np.array([1.0])])
def test_a_bandwidth_that_is_not_a_number_is_refused_by_name(bandwidth: Any) -> None:
    x, y = _pair(0, n=10, m=10, d=2)
    for f in (drift.mmd2_unbiased, drift.mmd_permutation_test, drift.mmd2_linear, drift.mmd2_rff):
        with pytest.raises(EngineInputError, match="bandwidth"):
            f(x, y, bandwidth=bandwidth)


def test_a_numpy_or_zero_dimensional_bandwidth_is_taken_as_its_number() -> None:
    x, y = _pair(0, n=10, m=10, d=2)
    want = drift.mmd2_unbiased(x, y, bandwidth=2.0)
    for bandwidth in (np.float32(2.0), np.int64(2), 2, np.array(2.0)):
        assert drift.mmd2_unbiased(x, y, bandwidth=bandwidth) == want  # type: ignore[arg-type]


def test_permutations_checks_its_arguments_by_name() -> None:
    bad = [((-1, 0, 3, 5), "n_total"), ((10.5, 4, 3, 5), "n_total"), ((10, -1, 3, 5), "n_x"),
           ((10, 4, -3, 5), "n_permutations"), ((10, 4, 2**63, 5), "n_permutations"),
           ((10, 4, 3, "a"), "seed"), ((10, 4, 3, 1.5), "seed"),
           ((10, 11, 3, 5), "n_x")]  # last: the shuffle wrote past the pooled positions (a crash)
    for args, name in bad:
        with pytest.raises(EngineInputError, match=name):
            drift.permutations(*args)  # type: ignore[arg-type]
    assert drift.permutations(10, 10, 2, 0).shape == (2, 10)
    assert drift.permutations(10, 0, 2, 0).shape == (2, 0)
