"""The linear-time MMD test keeps its level for every number of pairs, and its Student-t tail."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from engine import drift
from engine._student_t import student_t_sf

ALPHA = 0.05


def _null_rejection_rate(pairs: int, seeds: int, d: int = 5) -> float:
    rejected = 0
    for seed in range(seeds):
        rng = np.random.default_rng([pairs, seed])
        x = rng.standard_normal((2 * pairs, d))
        y = rng.standard_normal((2 * pairs, d))
        rejected += drift.mmd2_linear(x, y).p_value <= ALPHA
    return rejected / seeds


def _margin(seeds: int) -> float:
    return 3.0 * math.sqrt(ALPHA * (1 - ALPHA) / seeds)  # three Monte Carlo standard errors


@pytest.mark.parametrize("pairs", [2, 3, 5])
def test_few_pairs_reject_at_most_alpha_under_the_null(pairs: int) -> None:
    seeds = 3000
    rate = _null_rejection_rate(pairs, seeds)
    assert rate <= ALPHA + _margin(seeds), f"{pairs} pairs reject {rate:.3f} of null samples at {ALPHA}"


@pytest.mark.slow
@pytest.mark.parametrize("pairs", [2, 3, 5, 10, 20, 50, 100])
def test_null_rejection_rate_by_pair_count(pairs: int) -> None:
    seeds = 4000
    rate = _null_rejection_rate(pairs, seeds)
    assert rate <= ALPHA + _margin(seeds), f"{pairs} pairs reject {rate:.3f} of null samples at {ALPHA}"
    assert rate >= ALPHA - 4 * _margin(seeds) / 3 - 0.015  # valid, yet not needlessly conservative


def test_swapping_a_pair_across_samples_negates_its_term() -> None:
    """The symmetry the t-test relies on: swapping ``x_2i+1`` and ``y_2i+1`` negates ``h_i``."""
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((10, 3)), rng.standard_normal((10, 3))
    x2, y2 = x.copy(), y.copy()
    x2[1::2], y2[1::2] = y[1::2], x[1::2]
    h = drift._linear_terms(x, y, 5, 0.3)
    np.testing.assert_allclose(drift._linear_terms(x2, y2, 5, 0.3), -h, rtol=1e-12, atol=1e-15)
    # and the statistic flips sign under the same swap (fixed bandwidth)
    assert drift.mmd2_linear(x2, y2, bandwidth=1.3).statistic == pytest.approx(
        -drift.mmd2_linear(x, y, bandwidth=1.3).statistic, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 9, 30, 174, 999, 10**4, 10**5 + 1, 10**7, 10**9])
def test_student_t_sf_matches_scipy(df: int) -> None:
    ts = np.concatenate([-np.logspace(-3, 1.5, 12), [0.0], np.logspace(-3, 2, 20)])
    got = np.array([student_t_sf(float(t), df) for t in ts])
    ref = stats.t.sf(ts, df)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-300)
    assert student_t_sf(math.inf, df) == 0.0 and student_t_sf(-math.inf, df) == 1.0


def test_p_value_is_the_t_test_of_the_terms() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((9, 2)), rng.standard_normal((12, 2)) + 0.3
    res = drift.mmd2_linear(x, y, bandwidth=1.0)
    h = drift._linear_terms(x, y, 4, 0.5)
    ref = stats.ttest_1samp(h, 0.0, alternative="greater")
    assert res.statistic == pytest.approx(float(h.mean()), rel=1e-12)
    assert res.p_value == pytest.approx(float(ref.pvalue), rel=1e-9)


def test_many_pairs_keep_the_normal_p_value() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((40_000, 2)), rng.standard_normal((40_000, 2)) + 0.02
    stat, p = drift.mmd2_linear(x, y, bandwidth=1.0)
    h = drift._linear_terms(x, y, 20_000, 0.5)
    normal_p = float(stats.norm.sf(stat / (h.std(ddof=1) / math.sqrt(20_000))))
    assert 1e-6 < normal_p < 0.999
    assert p == pytest.approx(normal_p, rel=2e-3)
