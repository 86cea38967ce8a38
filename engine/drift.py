"""Two-sample drift statistics: MMD (exact with permutations, linear-time, random features), KS,
Wasserstein-1.

Kernel and bandwidth
--------------------
MMD uses the RBF kernel ``k(a, b) = exp(-||a - b||^2 / (2 sigma^2))``. The default bandwidth is
the median heuristic: ``sigma`` = the median Euclidean distance between distinct points of the
pooled sample (``np.median`` convention; 1.0 if that median is 0). The quadratic statistics use
every pair; the linear-time and random-feature statistics use a strided subsample of at most 1,000
pooled points so that they stay sub-quadratic.

Permutation test
----------------
:func:`mmd_permutation_test` builds the pooled kernel matrix once (distances by BLAS, their
median from a bracket found in the same pass, kernel by NumPy's SIMD ``exp``; see
:mod:`engine._mmd`) and evaluates every permutation at once: with ``A`` the 0/1 matrix of "in the
first sample" per permutation, the within-first-sample sums are ``diag(A^T K A)``, computed over
the symmetric ``K`` by 2 x 2 blocks with half the multiply-adds of ``K @ A``, and the other two
sums follow from the row sums of ``K``. The p-value is
``(1 + #{perm stat >= observed}) / (1 + permutations)``, where a permutation statistic within
``2**-40 (n + m)`` below the observed one counts as equal (ties computed from other sums differ in
their last bits: tied or binary features, or the swapped split when ``n == m``). Permutations
come from the engine's own seeded generator, so the p-value depends only on the inputs and the
seed.

Inputs are float arrays of shape ``(n, d)`` (1-D arrays are one feature); NaN and inf are rejected.

Scale
-----
The MMD statistics and the median heuristic are scale-invariant, but squared distances of
finite values beyond about ``1e154`` overflow to inf (a NaN kernel: a NaN statistic with a
"significant" p-value) and those of values below about ``1e-154`` underflow to 0 (no drift
seen). Inputs whose largest magnitude lies outside ``2**-400 .. 2**400`` are therefore first
multiplied by the power of two ``2**-e`` that brings it into [0.5, 1) (an explicit
``bandwidth`` too, and ``median_heuristic`` scales its result back); as that is exact, the
statistics equal those of the same data at an ordinary scale, and inputs within that range are
computed as they are, bit for bit. The median heuristic's fallback of 1.0 (a median of 0) is
then ``2**e`` in the data's units.

Example
-------
>>> import numpy as np
>>> from engine import drift
>>> rng = np.random.default_rng(0)
>>> x, y = rng.normal(size=(100, 2)), rng.normal(1.0, 1.0, size=(100, 2))
>>> drift.mmd_permutation_test(x, y, n_permutations=100, seed=0).p_value < 0.05
True
>>> round(drift.wasserstein_1d([0.0, 1.0], [1.0, 2.0]), 6)
1.0
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np
from numba import njit, prange

from engine._blocks import PARALLEL_ROWS
from engine._magnitude import power_of_two_scale
from engine._mmd import median_upper, pooled_kernel, quadratic_forms
from engine._random import next_u64, seed_state, u01_open, u64_to_open01
from engine._student_t import student_t_sf
from engine._univariate import KSResult, ks_2samp, wasserstein_1d
from engine._validate import _asarray, as_float_1d, as_float_2d, check_finite, check_int, check_seed, describe
from engine.errors import EngineInputError

__all__ = [
    "KSResult",
    "LinearMMDResult",
    "MMDTestResult",
    "ks_2samp",
    "median_heuristic",
    "mmd2_linear",
    "mmd2_rff",
    "mmd2_unbiased",
    "mmd_permutation_test",
    "wasserstein_1d",
]

_SUBSAMPLE = 1000
#: the most permutations or random features: counts beyond int64 would not reach the kernels
_MAX_COUNT = 2**62
#: per pooled point, how far below the observed MMD^2 a permutation's may be and still count as
#: equal (rounding of the kernel sums: a few ulps per point, measured; 2**-40 leaves a margin)
_TIE_TOL = 2.0**-40


class MMDTestResult(NamedTuple):
    """Unbiased squared MMD and its permutation p-value (unpacks as ``stat, p``)."""

    statistic: float
    p_value: float


class LinearMMDResult(NamedTuple):
    """Linear-time MMD estimate and its one-sided Student-t p-value."""

    statistic: float
    p_value: float


def _samples(x: Any, y: Any, *, min_rows: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Both samples as float64 ``(n, d)`` arrays, scaled by ``2**-e`` (see "Scale" above), and ``e``."""
    out = []
    for name, v in (("x", x), ("y", y)):
        a = _asarray(name, v)
        a = as_float_2d(name, a.reshape(-1, 1) if a.ndim == 1 else a)
        check_finite(name, a)
        if a.shape[0] < min_rows:
            raise EngineInputError(name, describe(a), f"at least {min_rows} rows")
        out.append(a.astype(np.float64, copy=False))
    if out[0].shape[1] != out[1].shape[1]:
        raise EngineInputError("y", describe(out[1]), f"{out[0].shape[1]} columns, as many as x")
    # scale-invariant statistics: only squared distances that would overflow to inf (NaN
    # kernels) or underflow to 0 change
    (a, b), e = power_of_two_scale(out[0], out[1])
    return a, b, e


def _bandwidth(bandwidth: float | None, z: np.ndarray, scale: int) -> float:
    """``sigma`` for data scaled by ``2**-scale``: the median heuristic, or ``bandwidth``
    (given in the data's units) scaled alike."""
    if bandwidth is None:
        return _median_sigma(z)
    if isinstance(bandwidth, np.ndarray) and bandwidth.ndim == 0 and bandwidth.dtype.kind in "iuf":
        bandwidth = bandwidth.item()
    # a number only: float() would also take the text "1" (and bytes)
    b = (float(bandwidth) if isinstance(bandwidth, numbers.Real)
         and not isinstance(bandwidth, (bool, np.bool_)) else math.nan)
    if not (math.isfinite(b) and b > 0):
        raise EngineInputError("bandwidth", bandwidth,
                               "a finite number > 0, or None for the median heuristic")
    scaled = math.ldexp(b, -scale)
    if not (math.isfinite(scaled) and scaled > 0):
        raise EngineInputError("bandwidth", bandwidth,
                               f"a bandwidth within 2**+-1000 of the data's magnitude (2**{scale})")
    return scaled


@njit(cache=True)
def _sq_dists_row(z, out, i):  # type: ignore[no-untyped-def]
    for j in range(i + 1, z.shape[0]):
        s = 0.0
        for t in range(z.shape[1]):
            diff = z[i, t] - z[j, t]
            s += diff * diff
        out[i, j] = s
        out[j, i] = s


@njit(cache=True, parallel=True)
def _sq_dists_par(z, out):  # type: ignore[no-untyped-def]
    for i in prange(z.shape[0]):
        _sq_dists_row(z, out, i)


@njit(cache=True)
def _sq_dists(z):  # type: ignore[no-untyped-def]
    """Pairwise squared Euclidean distances (exact loops; used for small subsamples)."""
    n, d = z.shape
    out = np.zeros((n, n), dtype=np.float64)
    if n * n * d < 2 * PARALLEL_ROWS:
        for i in range(n):
            _sq_dists_row(z, out, i)
    else:
        _sq_dists_par(z, out)
    return out


def _median_sigma(z: np.ndarray, d2: np.ndarray | None = None) -> float:
    return median_upper(_sq_dists(z) if d2 is None else d2)


def _subsample(z: np.ndarray, cap: int) -> np.ndarray:
    if z.shape[0] <= cap:
        return z
    return z[(np.arange(cap) * z.shape[0]) // cap]


def median_heuristic(x: Any, y: Any, *, max_points: int | None = None) -> float:
    """Median distance between distinct pooled points (over a strided subsample of at most
    ``max_points`` points when given); 1.0 if the median is 0."""
    a, b, scale = _samples(x, y, min_rows=1)
    z = np.concatenate([a, b])
    if max_points is not None:
        z = _subsample(z, check_int("max_points", max_points, minimum=2))
    return math.ldexp(_median_sigma(z), scale)


def _kernel(x: np.ndarray, y: np.ndarray, bandwidth: float | None, scale: int) -> tuple[np.ndarray, float]:
    z = np.concatenate([x, y])
    return pooled_kernel(z, None if bandwidth is None else _bandwidth(bandwidth, z, scale))


def _mmd2_from_sums(sxx: np.ndarray, row_x: np.ndarray, total: float, n: int, m: int) -> np.ndarray:
    """Unbiased MMD^2 per assignment from ``sum K[X, X]`` and ``sum K[X, :]`` (K's diagonal is 1)."""
    sxy = row_x - sxx
    syy = total - sxx - 2.0 * sxy
    return (sxx - n) / (n * (n - 1)) + (syy - m) / (m * (m - 1)) - 2.0 * sxy / (n * m)


def mmd2_unbiased(x: Any, y: Any, *, bandwidth: float | None = None) -> float:
    """Unbiased estimate of squared MMD (Gretton et al. 2012, eq. 3) with an RBF kernel.

    Needs at least 2 rows in each sample; ``O((n + m)^2)`` time and memory.
    """
    a, b, scale = _samples(x, y, min_rows=2)
    k, _ = _kernel(a, b, bandwidth, scale)
    n, m = a.shape[0], b.shape[0]
    ind = np.zeros((n + m, 1))
    ind[:n] = 1.0
    row = k.sum(axis=1)
    sxx = quadratic_forms(k, ind)[0]
    return float(_mmd2_from_sums(np.array([sxx]), np.array([row[:n].sum()]), float(row.sum()), n, m)[0])


@njit(cache=True)
def _permutation_indicators(n_total, n_x, n_perm, state):  # type: ignore[no-untyped-def]
    """Column 0: the observed split; column p > 0: first ``n_x`` of a Fisher-Yates shuffle."""
    a = np.zeros((n_total, n_perm + 1), dtype=np.float64)
    rng = np.array([state], dtype=np.uint64)
    perm = np.arange(n_total)
    for i in range(n_x):
        a[i, 0] = 1.0
    for p in range(1, n_perm + 1):
        for i in range(n_total - 1, 0, -1):
            j = np.int64(u64_to_open01(next_u64(rng)) * (i + 1))
            t = perm[i]
            perm[i] = perm[j]
            perm[j] = t
        for i in range(n_x):
            a[perm[i], p] = 1.0
    return a


def permutations(n_total: int, n_x: int, n_permutations: int, seed: int) -> np.ndarray:
    """The index sets used by :func:`mmd_permutation_test`: ``(n_permutations, n_x)`` int64,
    row p = positions (in the pooled ``[x; y]``) assigned to the first sample by permutation p.

    ``n_total`` and ``n_x`` are counts with ``n_x <= n_total``; ``n_permutations`` is in
    ``[0, 2**62]`` and ``seed`` an integer in ``[0, 2**64 - 1]``, as for :func:`mmd_permutation_test`."""
    n_total = check_int("n_total", n_total, maximum=_MAX_COUNT)
    n_x = check_int("n_x", n_x)
    if n_x > n_total:  # the shuffle would write past the pooled positions
        raise EngineInputError("n_x", n_x, f"an integer in [0, {n_total}] (at most n_total)")
    n_permutations = check_int("n_permutations", n_permutations, maximum=_MAX_COUNT)
    seed = check_seed("seed", seed)
    a = _permutation_indicators(n_total, n_x, n_permutations, seed_state(seed))
    if n_permutations == 0:
        return np.empty((0, n_x), dtype=np.int64)
    return np.stack([np.flatnonzero(a[:, p]) for p in range(1, n_permutations + 1)])


def mmd_permutation_test(
    x: Any, y: Any, *, n_permutations: int = 200, seed: int = 0, bandwidth: float | None = None
) -> MMDTestResult:
    """Unbiased MMD^2 and its permutation p-value from one pooled kernel matrix.

    Parameters
    ----------
    x, y:
        Samples of shape ``(n, d)`` and ``(m, d)``, ``n, m >= 2``.
    n_permutations:
        Random relabellings of the pooled sample, in ``[0, 2**62]`` (0 gives p-value 1.0).
    seed:
        Seed of the permutations.
    bandwidth:
        RBF ``sigma``; ``None`` = median heuristic over all pooled pairs.

    Returns
    -------
    MMDTestResult
        ``(statistic, p_value)``.
    """
    a, b, scale = _samples(x, y, min_rows=2)
    n_perm = check_int("n_permutations", n_permutations, maximum=_MAX_COUNT)
    seed = check_seed("seed", seed)
    k, _ = _kernel(a, b, bandwidth, scale)
    n, m = a.shape[0], b.shape[0]
    ind = _permutation_indicators(n + m, n, n_perm, seed_state(seed))
    row = k.sum(axis=1)
    sxx = quadratic_forms(k, ind)
    stats = _mmd2_from_sums(sxx, row @ ind, float(row.sum()), n, m)
    observed = float(stats[0])
    # a relabelling whose statistic equals the observed one (the same split, the swapped one
    # when n == m, or any with the same counts of tied values) comes out of other sums, a few
    # ulps per pooled point off it: those count as equal (kernel values are at most 1)
    tol = _TIE_TOL * (n + m)
    p = (1.0 + float(np.count_nonzero(stats[1:] >= observed - tol))) / (1.0 + n_perm)
    return MMDTestResult(observed, p)


@njit(cache=True)
def _linear_terms(x, y, n_pairs, gamma, sigma=1.0):  # type: ignore[no-untyped-def]
    """The terms ``h_i`` of :func:`mmd2_linear`, ``gamma = 1 / (2 sigma^2)`` (``sigma`` is read
    only where that is inf)."""
    d = x.shape[1]
    h = np.empty(n_pairs, dtype=np.float64)
    for i in range(n_pairs):
        a1, a2, b1, b2 = 2 * i, 2 * i + 1, 2 * i, 2 * i + 1
        s_xx = 0.0
        s_yy = 0.0
        s_xy = 0.0
        s_yx = 0.0
        for t in range(d):
            u = x[a1, t] - x[a2, t]
            s_xx += u * u
            u = y[b1, t] - y[b2, t]
            s_yy += u * u
            u = x[a1, t] - y[b2, t]
            s_xy += u * u
            u = x[a2, t] - y[b1, t]
            s_yx += u * u
        h[i] = (_rbf(s_xx, gamma, sigma) + _rbf(s_yy, gamma, sigma)
                - _rbf(s_xy, gamma, sigma) - _rbf(s_yx, gamma, sigma))
    return h


@njit(cache=True)
def _rbf(s, gamma, sigma):  # type: ignore[no-untyped-def]
    """``exp(-s / (2 sigma^2))``; where sigma^2 underflows (``gamma`` inf, and inf x 0 is NaN),
    by dividing ``s`` by ``sigma`` twice."""
    if gamma < np.inf:
        return np.exp(-gamma * s)
    return np.exp(-0.5 * ((s / sigma) / sigma))


def mmd2_linear(x: Any, y: Any, *, bandwidth: float | None = None) -> LinearMMDResult:
    """Linear-time MMD^2 estimate (Gretton et al. 2012, Lemma 14) over ``min(n, m) // 2`` pairs.

    ``h_i = k(x_2i, x_2i+1) + k(y_2i, y_2i+1) - k(x_2i, y_2i+1) - k(x_2i+1, y_2i)``; the statistic is
    their mean and the p-value the one-sided one-sample t-test of ``mean(h) > 0``:
    ``P(T_(pairs-1) >= statistic / (sd(h) / sqrt(pairs)))``. Under the null each ``h_i`` is
    symmetric about 0 (swapping ``x_2i+1`` and ``y_2i+1`` negates it), and the t-test keeps its
    level for symmetric terms from 2 pairs on, where the normal approximation does not (at 2 pairs
    it rejects about 17% of the time at level 0.05); for many pairs the two p-values agree.
    A single pair (fewer than 4 rows in a sample) gives no variance estimate: p-value 1.0. Zero
    variance over several pairs: 1.0 if the statistic is <= 0, else 0.0.
    """
    a, b, scale = _samples(x, y, min_rows=2)
    sigma = _bandwidth(bandwidth, _subsample(np.concatenate([a, b]), _SUBSAMPLE), scale)
    n_pairs = min(a.shape[0], b.shape[0]) // 2
    two_s2 = 2.0 * sigma * sigma
    h = _linear_terms(a, b, n_pairs, 1.0 / two_s2 if two_s2 > 0.0 else math.inf, sigma)
    stat = float(h.mean())
    if n_pairs < 2:  # one pair: a sign, not a test (it would reject half the time under the null)
        return LinearMMDResult(stat, 1.0)
    sd = float(h.std(ddof=1))
    if not sd > 0:
        return LinearMMDResult(stat, 1.0 if stat <= 0 else 0.0)
    return LinearMMDResult(stat, student_t_sf(stat / (sd / math.sqrt(n_pairs)), n_pairs - 1))


@njit(cache=True)
def _normals(state, count):  # type: ignore[no-untyped-def]
    """``count`` standard normals (Box-Muller, both outputs used) from a seeded stream."""
    rng = np.array([state], dtype=np.uint64)
    out = np.empty(count, dtype=np.float64)
    i = 0
    while i < count:
        r = np.sqrt(-2.0 * np.log(u01_open(rng)))
        t = 2.0 * np.pi * u01_open(rng)
        out[i] = r * np.cos(t)
        if i + 1 < count:
            out[i + 1] = r * np.sin(t)
        i += 2
    return out


@njit(cache=True)
def _uniforms(state, count):  # type: ignore[no-untyped-def]
    """``count`` uniforms in (0, 1) from a seeded stream."""
    rng = np.array([state], dtype=np.uint64)
    out = np.empty(count, dtype=np.float64)
    for i in range(count):
        out[i] = u01_open(rng)
    return out


def rff_features(d: int, n_features: int, sigma: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The random frequencies ``(d, n_features)`` and phases ``(n_features,)`` of :func:`mmd2_rff`."""
    w = _normals(seed_state(seed), d * n_features).reshape(d, n_features) / sigma
    phase = 2.0 * np.pi * _uniforms(seed_state(seed ^ 0x5DEECE66D), n_features)
    return w, phase


def mmd2_rff(x: Any, y: Any, *, n_features: int = 256, bandwidth: float | None = None,
             seed: int = 0) -> float:
    """Squared MMD approximated with random Fourier features (Rahimi & Recht 2007), ``O(n D d)``.

    ``phi(v) = sqrt(2 / D) cos(v W + b)`` with ``W ~ N(0, 1 / sigma^2)``, ``b ~ U[0, 2 pi)``; the
    estimate is ``||mean phi(x) - mean phi(y)||^2`` (a biased, non-negative estimate of the RBF MMD^2).
    """
    a, b, exponent = _samples(x, y, min_rows=1)
    n_features = check_int("n_features", n_features, minimum=1, maximum=_MAX_COUNT)
    seed = check_seed("seed", seed)
    sigma = _bandwidth(bandwidth, _subsample(np.concatenate([a, b]), _SUBSAMPLE), exponent)
    with np.errstate(over="ignore", invalid="ignore"):
        w, phase = rff_features(a.shape[1], n_features, sigma, seed)
        pa, pb = a @ w + phase, b @ w + phase
    if not (np.isfinite(pa).all() and np.isfinite(pb).all()):
        # frequencies N(0, 1) / sigma or projections beyond float64: cos(inf) is NaN
        raise EngineInputError("bandwidth", bandwidth, "a bandwidth at which the random features "
                                                       "stay finite (x W / bandwidth overflows)")
    scale = math.sqrt(2.0 / n_features)
    diff = scale * (np.cos(pa).mean(axis=0) - np.cos(pb).mean(axis=0))
    return float(diff @ diff)
