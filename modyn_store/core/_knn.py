"""Exact k-nearest-neighbour search (squared L2) behind ``VectorIndex``'s exact kind.

The answer is the ``k`` rows of smallest ``(distance, row)``: squared distances computed directly
as ``sum((q - b) ** 2)`` in float64 of the stored float32 vectors (a float64 brute force), ties
to the lower row. Ranking every row that way would cost a gather per pair, so it runs in two
steps, ``_CHUNK`` distance entries (a block of queries) at a time:

1. A float32 matrix product on vectors centred at the base's mean gives each distance within
   ``tol = g * (|q - c|^2 + |b - c|^2)`` (``g``: a bound on float32 rounding for width ``d``,
   with a 2x margin). From the ``k``-th smallest estimate of a query, an upper bound on its
   ``k``-th distance, only rows whose estimate is within twice the largest tolerance can be among
   its neighbours: those are the candidates (every row tied with the ``k``-th included). Norms
   beyond float32's range skip this step (every row a candidate). Products and conversions that
   underflow float32 (vectors of magnitude below about 1e-19) have an absolute error instead, up
   to ``eta * (d + 16) * (1 + |q - c| + |b - c|)`` (``eta``: 2**-140, half the float32 subnormal
   spacing with a wide margin), which every tolerance includes: for such tiny vectors most rows
   become candidates, and the result stays exact.
2. Candidates get their exact distances in column order: after the first ``2k + 16`` of a
   query, a later candidate (a larger row, so it loses a tie) is kept only while its lower bound
   (estimate - tol) is below the current ``k``-th exact distance, which ends long runs of equal
   distances (e.g. duplicated embeddings) after one round.

Memory: a few ``_CHUNK``-sized blocks (float32; int64 candidate lists where many distances
tie), never the ``[queries, rows]`` matrix.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = ["ExactKnn"]

_CHUNK = 1 << 22  # distance entries per query block (16 MiB as float32)
_PAIRS = 1 << 20  # float64 elements per block of exact pair distances (8 MiB)
_U32 = 2.0 ** -24  # float32 unit roundoff
# float32 underflow: a product or conversion that lands below the normal range is off by up to half
# the subnormal spacing (2**-150) whatever its size; with a 1024x margin, per term
_ETA32 = 2.0 ** -140


class ExactKnn:
    """Exact search over the float32 rows of ``base`` (kept, not copied), see the module doc."""

    def __init__(self, base: np.ndarray) -> None:
        self.base = base
        n, d = base.shape
        self.centre = base.mean(axis=0, dtype=np.float64) if n else np.zeros(d)
        self.neg2_centred = np.empty((n, d), dtype=np.float32)  # -2 (b - c): scaling by 2 is exact
        self.norms = np.empty(n)  # |b - c|^2 of the float32 centred rows
        step = max(1, _PAIRS // max(d, 1))
        for s in range(0, n, step):
            part = (base[s:s + step] - self.centre).astype(np.float32).astype(np.float64)
            self.norms[s:s + step] = np.einsum("ij,ij->i", part, part)
            self.neg2_centred[s:s + step] = part * -2.0
        with np.errstate(over="ignore"):  # huge norms: _block then skips the float32 step
            self.norms32 = self.norms.astype(np.float32)
        self.norm_max = float(self.norms.max()) if n else 0.0
        # float32 rounding of centring, products, sums: gamma_d + a few units, times 2
        self.g = 2.0 * (d + 16) * _U32

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows (int64) and float64 squared distances of the ``k`` nearest rows per query (``q``
        float64 ``[m, d]``); ``min(k, n)`` columns."""
        n = self.base.shape[0]
        k = min(int(k), n)
        m = q.shape[0]
        idx = np.empty((m, k), dtype=np.int64)
        dist = np.empty((m, k), dtype=np.float64)
        if k == 0 or m == 0:
            return idx, dist
        step = max(1, _CHUNK // n)
        for s in range(0, m, step):
            idx[s:s + step], dist[s:s + step] = self._block(q[s:s + step], k)
        return idx, dist

    def _block(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = self.base.shape[0]
        c = q.shape[0]
        qc = (q - self.centre).astype(np.float32)
        q64 = qc.astype(np.float64)
        nq = np.einsum("ij,ij->i", q64, q64)
        g = self.g
        if nq.max() + self.norm_max > 1e37 or not np.isfinite(nq).all():  # float32 would overflow
            return self._exact_of(q, np.arange(c * n), n, lambda at: np.full(at.size, -np.inf), k)
        # h = |b|^2 - 2 q.b (float32), distance = h + |q|^2 within g * (|q|^2 + |b|^2)
        h = qc @ self.neg2_centred.T  # [c, n]
        h += self.norms32[None, :]
        kth = np.partition(h, k - 1, axis=1)[:, k - 1] if k < n else h.max(axis=1)
        # the k-th distance is at most kth + |q|^2 + tol; a row can reach it only if its lower
        # bound h + |q|^2 - tol does (tol at most g * (|q|^2 + max |b|^2) each side)
        # plus the absolute error of float32 underflow (tiny vectors), each side
        eta = _ETA32 * (self.base.shape[1] + 16)
        qn = np.sqrt(nq)
        slack = (2.0 * g) * (nq + self.norm_max) + (2.0 * eta) * (1.0 + qn + math.sqrt(self.norm_max))
        flat = np.flatnonzero(h <= (kth + slack.astype(np.float32))[:, None])  # by row, then column
        hf = h.ravel()

        def low(at: np.ndarray) -> np.ndarray:  # lower bounds of the distances of pairs flat[at]
            r, j = np.divmod(flat[at], n)
            return hf[flat[at]] + (nq[r] - g * (nq[r] + self.norms[j])
                                   - eta * (1.0 + qn[r] + np.sqrt(self.norms[j])))

        return self._exact_of(q, flat, n, low, k)

    def _exact_of(self, q: np.ndarray, flat: np.ndarray, n: int, low: Callable[[np.ndarray], np.ndarray],
                  k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` smallest exact ``(distance, column)`` per query among the candidate pairs
        ``flat`` (``row * n + column``, ascending); ``low(at)``: lower bounds of the distances of
        ``flat[at]``."""
        c = q.shape[0]
        rows = flat // n
        pos = np.arange(flat.size) - np.searchsorted(rows, np.arange(c))[rows]  # rank within its row
        best_e = np.full((c, k), np.inf)
        best_j = np.full((c, k), n, dtype=np.int64)
        rest = np.arange(flat.size)
        hi = 2 * k + 16
        while rest.size:
            now = rest[pos[rest] < hi]
            if now.size:
                r, j = np.divmod(flat[now], n)
                self._merge(best_e, best_j, r, j, self._pairs(q, r, j))
            rest = rest[pos[rest] >= hi]
            # a later candidate has a larger column, so loses a tie: it enters only below the
            # row's k-th exact distance
            rest = rest[low(rest) < best_e[rows[rest], k - 1]]
            hi *= 2
        return best_j, best_e

    def _pairs(self, q: np.ndarray, r: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``sum((q[r] - base[j]) ** 2)`` in float64 per pair."""
        out = np.empty(r.size, dtype=np.float64)
        step = max(1, _PAIRS // max(self.base.shape[1], 1))
        for s in range(0, r.size, step):
            diff = q[r[s:s + step]] - self.base[j[s:s + step]].astype(np.float64)
            np.square(diff, out=diff)
            out[s:s + step] = diff.sum(axis=1)
        return out

    @staticmethod
    def _merge(best_e: np.ndarray, best_j: np.ndarray, r: np.ndarray, j: np.ndarray, e: np.ndarray) -> None:
        """Fold candidates ``(row r, column j, distance e)`` into each row's ``k`` smallest
        ``(distance, column)``."""
        c, k = best_e.shape
        have = np.isfinite(best_e)
        rr = np.concatenate([np.nonzero(have)[0], r])
        ee = np.concatenate([best_e[have], e])
        jj = np.concatenate([best_j[have], j])
        order = np.lexsort((jj, ee, rr))
        rr, ee, jj = rr[order], ee[order], jj[order]
        pos = np.arange(rr.size) - np.searchsorted(rr, np.arange(c))[rr]
        keep = pos < k
        best_e[rr[keep], pos[keep]] = ee[keep]
        best_j[rr[keep], pos[keep]] = jj[keep]
