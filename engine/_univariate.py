"""One-dimensional two-sample statistics: Kolmogorov-Smirnov and Wasserstein-1 (the drift
metrics of single features; :mod:`engine.drift` exports both).

Example
-------
>>> from engine.drift import ks_2samp, wasserstein_1d
>>> ks_2samp([0.0, 1.0, 2.0], [0.0, 1.0, 2.0]).statistic
0.0
>>> round(wasserstein_1d([0.0, 1.0], [1.0, 2.0]), 6)
1.0
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from engine._validate import as_float_1d, check_finite, describe
from engine.errors import EngineInputError

__all__ = ["KSResult", "ks_2samp", "wasserstein_1d"]


class KSResult(NamedTuple):
    """Two-sample Kolmogorov-Smirnov statistic and asymptotic two-sided p-value."""

    statistic: float
    p_value: float


def _sample_1d(name: str, v: Any) -> np.ndarray:
    a = as_float_1d(name, v, keep_float32=False)
    check_finite(name, a)
    if a.shape[0] == 0:
        raise EngineInputError(name, describe(a), "at least one value")
    return a


@njit(cache=True)
def _ks_stat(a, b):  # type: ignore[no-untyped-def]
    """max |F_a - F_b| over the merged sorted samples (ties advance both sides together)."""
    n = a.shape[0]
    m = b.shape[0]
    i = 0
    j = 0
    d = 0.0
    while i < n and j < m:
        v = min(a[i], b[j])
        while i < n and a[i] == v:
            i += 1
        while j < m and b[j] == v:
            j += 1
        diff = abs(i / n - j / m)
        if diff > d:
            d = diff
    return d


def _kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution (two series, each where it converges fast)."""
    if lam <= 0:
        return 1.0
    if lam < 1.18:
        c = math.sqrt(2.0 * math.pi) / lam
        s = sum(math.exp(-((2 * k - 1) ** 2) * math.pi ** 2 / (8.0 * lam * lam)) for k in range(1, 12))
        return min(1.0, max(0.0, 1.0 - c * s))
    s = sum((-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam) for k in range(1, 101))
    return min(1.0, max(0.0, 2.0 * s))


def ks_2samp(x: Any, y: Any) -> KSResult:
    """Two-sample KS statistic ``sup |F_x - F_y|`` and its asymptotic p-value
    ``Q_K(sqrt(n m / (n + m)) D)`` (the Kolmogorov distribution; ``scipy.special.kolmogorov``).

    The statistic equals ``scipy.stats.ks_2samp``'s; the p-value is the large-sample one (scipy's
    default switches to an exact p-value for small samples).
    """
    a = np.sort(_sample_1d("x", x))
    b = np.sort(_sample_1d("y", y))
    d = float(_ks_stat(a, b))
    en = a.shape[0] * b.shape[0] / (a.shape[0] + b.shape[0])
    return KSResult(d, _kolmogorov_sf(math.sqrt(en) * d))


@njit(cache=True)
def _w1(a, b):  # type: ignore[no-untyped-def]
    """Integral of |F_a - F_b| over the merged sorted samples."""
    n = a.shape[0]
    m = b.shape[0]
    i = 0
    j = 0
    total = 0.0
    prev = min(a[0], b[0])
    while i < n or j < m:
        if j >= m or (i < n and a[i] <= b[j]):
            v = a[i]
        else:
            v = b[j]
        total += abs(i / n - j / m) * (v - prev)
        prev = v
        while i < n and a[i] == v:
            i += 1
        while j < m and b[j] == v:
            j += 1
    return total


def wasserstein_1d(u: Any, v: Any) -> float:
    """Wasserstein-1 distance between two 1-D empirical distributions (equal weights), as
    ``scipy.stats.wasserstein_distance``."""
    a = np.sort(_sample_1d("u", u))
    b = np.sort(_sample_1d("v", v))
    return float(_w1(a, b))
