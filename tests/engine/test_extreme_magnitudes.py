"""MMD statistics and greedy k-center on finite inputs of extreme magnitude.

Both are scale-invariant (the median-heuristic RBF kernel, the farthest point), but squared
distances of values beyond about 1e154 overflow to inf and below about 1e-154 underflow to 0. The
results must be those of the same data at an ordinary scale: multiplying by a power of two is
exact, so they are compared with the unscaled results.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import drift, kcenter_greedy

# 2**600 ~ 4e180 (squares overflow), 2**-560 ~ 3e-169 (squares underflow), 2**-1000 (near the
# smallest normal numbers)
_POWERS = [600, 1000, -560, -1000]


def _samples() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.normal(size=(20, 2)), rng.normal(1.0, 1.0, size=(25, 2))


@pytest.mark.parametrize("power", _POWERS)
def test_mmd_statistics_do_not_depend_on_the_scale(power: int) -> None:
    x, y = _samples()
    xs, ys = np.ldexp(x, power), np.ldexp(y, power)
    assert math.isfinite(drift.mmd2_unbiased(xs, ys))
    assert drift.mmd2_unbiased(xs, ys) == pytest.approx(drift.mmd2_unbiased(x, y), rel=1e-12)
    got = drift.mmd_permutation_test(xs, ys, n_permutations=60, seed=4)
    want = drift.mmd_permutation_test(x, y, n_permutations=60, seed=4)
    assert got.statistic == pytest.approx(want.statistic, rel=1e-12)
    assert got.p_value == want.p_value
    lin, lin_want = drift.mmd2_linear(xs, ys), drift.mmd2_linear(x, y)
    assert lin.statistic == pytest.approx(lin_want.statistic, rel=1e-12)
    assert lin.p_value == pytest.approx(lin_want.p_value, rel=1e-9)
    assert drift.mmd2_rff(xs, ys, seed=2) == pytest.approx(drift.mmd2_rff(x, y, seed=2), rel=1e-12)
    assert drift.median_heuristic(xs, ys) == pytest.approx(
        math.ldexp(drift.median_heuristic(x, y), power), rel=1e-12)
    for inner in (-300, 300):  # within 2**+-400: not rescaled, the same numbers bit for bit
        assert drift.mmd2_unbiased(np.ldexp(x, inner), np.ldexp(y, inner)) == drift.mmd2_unbiased(x, y)


@pytest.mark.parametrize("power", [600, -560])
def test_an_explicit_bandwidth_is_scaled_with_the_data(power: int) -> None:
    x, y = _samples()
    xs, ys = np.ldexp(x, power), np.ldexp(y, power)
    got = drift.mmd_permutation_test(xs, ys, n_permutations=30, bandwidth=math.ldexp(1.5, power))
    want = drift.mmd_permutation_test(x, y, n_permutations=30, bandwidth=1.5)
    assert got.statistic == pytest.approx(want.statistic, rel=1e-12)
    assert got.p_value == want.p_value


@pytest.mark.parametrize("power", _POWERS)
def test_kcenter_picks_the_farthest_point_at_any_scale(power: int) -> None:
    rng = np.random.default_rng(5)
    emb = rng.normal(size=(60, 3))
    want = kcenter_greedy(emb, 12, initial=[0]).tolist()
    assert kcenter_greedy(np.ldexp(emb, power), 12, initial=[0]).tolist() == want


def test_kcenter_does_not_tie_points_whose_squared_distances_leave_float64() -> None:
    # from center 0, point 2 is the farthest (1e200 vs 1e160); both squares overflow to inf
    assert kcenter_greedy(np.array([[0.0], [1e160], [1e200]]), 1, initial=[0]).tolist() == [2]
    # tiny: from centers {0, 2}, point 3 (1e-165 from 0) is farther than point 1 (1e-170)
    emb = np.array([[0.0], [1e-170], [1e-160], [1e-165]])
    assert kcenter_greedy(emb, 2, initial=[0]).tolist() == [2, 3]
