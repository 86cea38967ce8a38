"""Drift statistics on samples made mostly of equal rows."""

from __future__ import annotations

import numpy as np
import pytest

from engine import drift


def _two_points(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((2, 3)) * 10 + 50
    x = base[(rng.random(150) < 0.05).astype(int)]
    y = base[(rng.random(150) < 0.45).astype(int)]
    return x, y


@pytest.mark.parametrize("seed", [5, 17, 18, 22, 24])
def test_median_of_mostly_equal_rows_is_zero_so_the_bandwidth_is_one(seed: int) -> None:
    x, y = _two_points(seed)
    assert drift.median_heuristic(x, y) == 1.0
    want = drift.mmd2_unbiased(x, y, bandwidth=1.0)
    assert drift.mmd2_unbiased(x, y) == pytest.approx(want, rel=1e-12)
    got = drift.mmd_permutation_test(x, y, n_permutations=50, seed=1)
    assert got == pytest.approx(drift.mmd_permutation_test(x, y, n_permutations=50, seed=1, bandwidth=1.0), rel=1e-12)


def test_median_of_mostly_equal_rows_in_the_bracketed_path() -> None:
    rng = np.random.default_rng(3)
    base = rng.standard_normal((2, 5)) * 7 - 20
    z = base[(rng.random(1200) < 0.1).astype(int)]  # 719,400 pairs: the bracketed median
    assert drift.mmd2_unbiased(z[:600], z[600:]) == pytest.approx(
        drift.mmd2_unbiased(z[:600], z[600:], bandwidth=1.0), rel=1e-12, abs=1e-15)


def test_linear_mmd_of_a_single_pair_is_no_evidence() -> None:
    rng = np.random.default_rng(0)
    rejected = 0
    for _ in range(200):  # the same distribution: a test at 0.05 may reject about 5%
        res = drift.mmd2_linear(rng.standard_normal((3, 2)), rng.standard_normal((2, 2)))
        rejected += res.p_value <= 0.05
    assert rejected <= 25


def test_linear_mmd_p_value_is_roughly_uniform_under_the_null() -> None:
    from scipy import stats

    rng = np.random.default_rng(1)
    ps = [drift.mmd2_linear(rng.standard_normal((400, 2)), rng.standard_normal((400, 2))).p_value
          for _ in range(200)]
    assert stats.kstest(ps, "uniform").pvalue > 0.001
