"""The pooled RBF kernel matrix of the quadratic MMD statistics, built in a few fused passes.

:func:`pooled_kernel` returns the same matrix (same median-heuristic bandwidth, same unbiased
statistics) as the obvious construction, faster:

* squared distances from one BLAS product, turned into distances by a parallel pass that also
  counts how many upper-triangle values fall below and inside a narrow bracket around the median
  (the bracket comes from a sorted sample of 2^16 pairs); the few pairs whose
  ``|z_i|^2 + |z_j|^2 - 2 z_i.z_j`` cancellation may have left inaccurate (equal or near rows, or
  ordinary rows next to one far outlier that moved the mean they are centred on) are recomputed
  directly, ``sum_t (z_it - z_jt)^2``, in a second pass over their rows only;
* the exact median is then a partition of the few values inside the bracket (a full partition
  of the upper triangle only when the bracket missed, which a sample of 2^16 makes very rare);
* the kernel is one in-place ``exp`` pass (NumPy's SIMD ``exp``).

:func:`quadratic_forms` evaluates ``diag(A^T K A)`` for a symmetric ``K`` with about half the
multiply-adds of ``K @ A``: in slabs of rows ``I``, ``a^T K a = sum_I (a_I^T K_II a_I +
2 a_I^T K_I,after a_after)``, one BLAS product per diagonal block and one per slab to its right.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from engine._blocks import PARALLEL_ROWS

__all__ = ["median_upper", "pooled_kernel", "quadratic_forms", "sq_distances"]

_LEAF = 512  # smallest slab of rows of the quadratic forms (fewer, larger BLAS calls)
_SAMPLE = 1 << 16  # pairs sampled to bracket the median
_BRACKET = 5.0  # half-width of the bracket, in standard errors of the sample median's rank
_FAST_MEDIAN = 1 << 17  # upper-triangle size from which the bracketed median pays
_ZERO_TOL = 4.0 * float(np.finfo(np.float64).eps)  # x (columns + 2) x |row|^2: the product's error
_EXACT_BELOW = float(2**26)  # x that error bound: the distance^2 is recomputed directly below it

Bracket = tuple[float, float, np.ndarray, np.ndarray]  # (lo, hi, per-row count < lo, in [lo, hi])


@njit(cache=True)
def _row_of(t, n):  # type: ignore[no-untyped-def]
    """Row ``i`` of the ``t``-th upper-triangle entry (row-major, ``j > i``) of an ``n x n`` matrix."""
    lo = 0
    hi = n - 1
    while lo < hi:  # largest i with offset(i) <= t, offset(i) = i n - i (i + 1) / 2
        mid = (lo + hi + 1) // 2
        if mid * n - mid * (mid + 1) // 2 <= t:
            lo = mid
        else:
            hi = mid - 1
    return lo


@njit(cache=True)
def _exact(z, i, j):  # type: ignore[no-untyped-def]
    """``sum_t (z_it - z_jt)^2``: no cancellation (0 for equal rows)."""
    s = 0.0
    for t in range(z.shape[1]):
        d = z[i, t] - z[j, t]
        s += d * d
    return s


@njit(cache=True)
def _sample_finished(z, g, sq, tsq, count):  # type: ignore[no-untyped-def]
    """``count`` evenly strided upper-triangle entries of the distances that
    :func:`_finish_and_count` will make of ``g`` (computed the same way, ``g`` left as it is)."""
    n = g.shape[0]
    total = n * (n - 1) // 2
    out = np.empty(count, dtype=np.float64)
    for s in range(count):
        t = (s * total) // count
        i = _row_of(t, n)
        j = t - (i * n - i * (i + 1) // 2) + i + 1
        v = g[i, j] * -2.0
        v += sq[i]
        v += sq[j]
        out[s] = _exact(z, i, j) if v <= tsq[i] + tsq[j] else v
    return out


@njit(cache=True)
def _finish_row(z, g, sq, tsq, lo, hi, below, inside, i):  # type: ignore[no-untyped-def]
    n = g.shape[0]
    si = sq[i]
    ti = tsq[i]
    row = g[i]
    b = 0
    c = 0
    m = 0  # values the product's rounding may dominate, marked -1 (branch-free: the loop vectorises)
    for j in range(n):
        v = row[j] * -2.0
        v += si
        v += sq[j]
        bad = v <= ti + tsq[j]
        m += bad
        v = -1.0 if bad else v
        row[j] = v
        if j > i:
            b += v < lo
            c += (v >= lo) & (v <= hi)
    m -= row[i] < 0.0
    row[i] = 0.0
    if m > 0:  # rare on ordinary data (near-equal rows): recompute those directly, count again
        b = 0
        c = 0
        for j in range(n):
            v = row[j]
            if v < 0.0:
                v = _exact(z, i, j)
                row[j] = v
            if j > i:
                b += v < lo
                c += (v >= lo) & (v <= hi)
    below[i] = b
    inside[i] = c


@njit(cache=True, parallel=True)
def _finish_par(z, g, sq, tsq, lo, hi, below, inside):  # type: ignore[no-untyped-def]
    for i in prange(g.shape[0]):
        _finish_row(z, g, sq, tsq, lo, hi, below, inside, i)


@njit(cache=True)
def _finish_and_count(z, g, sq, tsq, lo, hi, below, inside):  # type: ignore[no-untyped-def]
    """In place: ``g[i, j] = sq_i + sq_j - 2 g[i, j]``, or, where that is at most ``tsq_i + tsq_j``
    (so cancellation may have left too few correct digits: equal or near rows, negative residues),
    the direct ``sum_t (z_it - z_jt)^2``; zero diagonal; per row, how many
    upper-triangle values are ``< lo`` and in ``[lo, hi]`` (serial below ``PARALLEL_ROWS`` entries)."""
    n = g.shape[0]
    if n * n < PARALLEL_ROWS:
        for i in range(n):
            _finish_row(z, g, sq, tsq, lo, hi, below, inside, i)
    else:
        _finish_par(z, g, sq, tsq, lo, hi, below, inside)


@njit(cache=True)
def _collect_row(d2, lo, hi, offsets, out, i):  # type: ignore[no-untyped-def]
    n = d2.shape[0]
    w = offsets[i]
    row = d2[i]
    for j in range(i + 1, n):
        v = row[j]
        out[w] = v
        w += (v >= lo) & (v <= hi)
    out[w] = np.inf


@njit(cache=True, parallel=True)
def _collect(d2, lo, hi, offsets, out):  # type: ignore[no-untyped-def]
    """Row by row, the upper-triangle values in ``[lo, hi]`` from ``offsets[i]`` on (branch-free:
    every value is written, the cursor only moves past kept ones, so each row owns one spare slot
    after its values, set to +inf at the end). Used from ``_FAST_MEDIAN`` pairs on, always parallel."""
    for i in prange(d2.shape[0]):
        _collect_row(d2, lo, hi, offsets, out, i)


@njit(cache=True)
def _upper(d2):  # type: ignore[no-untyped-def]
    n = d2.shape[0]
    out = np.empty(n * (n - 1) // 2, dtype=np.float64)
    w = 0
    for i in range(n):
        for j in range(i + 1, n):
            out[w] = d2[i, j]
            w += 1
    return out


def _median_of(flat: np.ndarray, h: int, odd: bool, shift: int = 0) -> float:
    """Median of a flat array whose ``h``-th smallest (after ``shift`` smaller values elsewhere)
    is the middle; the ``np.median`` convention on square roots (mean of the two middle distances)."""
    if odd:
        return math.sqrt(float(np.partition(flat, h - shift)[h - shift]))
    part = np.partition(flat, [h - 1 - shift, h - shift])
    return (math.sqrt(float(part[h - 1 - shift])) + math.sqrt(float(part[h - shift]))) / 2.0


def sq_distances(z: np.ndarray, bracket: bool) -> tuple[np.ndarray, Bracket]:
    """Pairwise squared distances of the rows of ``z`` (centred first to limit cancellation; the
    pairs where it may still cost digits recomputed directly), zero diagonal; with ``bracket``,
    also a bracket around their median and, per row, how many upper-triangle values fall below
    it and inside it."""
    z = np.ascontiguousarray(z, dtype=np.float64)
    zc = z - z.mean(axis=0)
    sq = np.einsum("ij,ij->i", zc, zc)
    # sq_i + sq_j - 2 g_ij is off by up to about _ZERO_TOL (d + 2) (sq_i + sq_j): of two equal
    # rows a rounding residue, not 0 (its square root would become the median-heuristic bandwidth
    # when most pairs are equal rows); of two ordinary rows next to one far outlier, which moves
    # the mean and so inflates every sq_i, noise larger than the distance. Values below
    # _EXACT_BELOW times that bound (relative error possibly above 2^-26) are recomputed from z.
    tsq = sq * (_ZERO_TOL * _EXACT_BELOW * (z.shape[1] + 2))
    g = zc @ np.ascontiguousarray(zc.T)
    n = g.shape[0]
    below = np.zeros(n, dtype=np.int64)
    inside = np.zeros(n, dtype=np.int64)
    lo, hi = math.inf, -math.inf
    if bracket and n * (n - 1) // 2 >= _FAST_MEDIAN:
        sample = np.sort(_sample_finished(z, g, sq, tsq, _SAMPLE))
        half = _BRACKET * 0.5 * math.sqrt(_SAMPLE)
        lo = float(sample[max(0, int(_SAMPLE / 2 - half))])
        hi = float(sample[min(_SAMPLE - 1, int(_SAMPLE / 2 + half))])
    _finish_and_count(z, g, sq, tsq, lo, hi, below, inside)
    return g, (lo, hi, below, inside)


def median_upper(d2: np.ndarray, bracket: Bracket | None = None) -> float:
    """Median distance (square root of the squared distances) over the upper triangle of ``d2``,
    ``np.median`` convention; 1.0 if it is 0."""
    n = d2.shape[0]
    total = n * (n - 1) // 2
    if total == 0:
        return 1.0
    h = total // 2
    odd = bool(total % 2)
    med = None
    if bracket is not None and bracket[0] <= bracket[1]:
        lo, hi, below, inside = bracket
        n_below = int(below.sum())
        n_inside = int(inside.sum())
        first = h if odd else h - 1
        if n_below <= first and h < n_below + n_inside:
            offsets = np.zeros(n, dtype=np.int64)
            np.cumsum(inside[:-1] + 1, out=offsets[1:])
            cand = np.empty(n_inside + n, dtype=np.float64)
            _collect(d2, lo, hi, offsets, cand)  # the n spare slots hold +inf, above every rank used
            med = _median_of(cand, h, odd, n_below)
    if med is None:
        med = _median_of(_upper(d2), h, odd)
    return med if med > 0 else 1.0


def pooled_kernel(z: np.ndarray, sigma: float | None) -> tuple[np.ndarray, float]:
    """RBF kernel matrix ``exp(-d2 / (2 sigma^2))`` of the pooled rows ``z`` and its bandwidth
    (``sigma=None``: the median heuristic over all distinct pairs)."""
    d2, bracket = sq_distances(z, bracket=sigma is None)
    if sigma is None:
        sigma = median_upper(d2, bracket)
    two_s2 = 2.0 * sigma * sigma
    coef = -1.0 / two_s2 if two_s2 > 0.0 else -math.inf
    if math.isfinite(coef):
        np.multiply(d2, coef, out=d2)
    else:  # sigma^2 underflows: -inf x 0 would be a NaN kernel; dividing twice keeps 0 (k = 1)
        with np.errstate(over="ignore", under="ignore"):
            np.divide(d2, sigma, out=d2)
            np.divide(d2, sigma, out=d2)
        np.multiply(d2, -0.5, out=d2)
    np.exp(d2, out=d2)
    return d2, sigma


def quadratic_forms(k: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``diag(a^T k a)`` for a symmetric ``k`` (n x n) and ``a`` (n x p), with about half the
    multiply-adds of ``k @ a``: per slab of rows ``I``, ``a_I^T k_II a_I + 2 a_I^T k_I,after a_after``
    (only the upper triangle of ``k`` outside the diagonal blocks is read)."""
    n = k.shape[0]
    out = np.zeros(a.shape[1], dtype=np.float64)
    h = max(_LEAF, -(-n // 8))
    for s in range(0, n, h):
        e = min(n, s + h)
        al = a[s:e]
        out += np.einsum("ip,ip->p", al, k[s:e, s:e] @ al)
        if e < n:
            out += 2.0 * np.einsum("ip,ip->p", al, k[s:e, e:] @ a[e:])
    return out
