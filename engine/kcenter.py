"""Greedy k-center selection on embeddings (Gonzalez 1985; the "core-set" of Sener & Savarese 2018).

Each step picks the point farthest (squared Euclidean distance, accumulated in float64) from every
center chosen so far, then updates every point's distance to its nearest center in parallel. The
farthest point is found by a per-block argmax merged at the end; ties go to the smallest index, so
the result does not depend on the thread count. ``O(k n d)`` time, ``O(n)`` extra memory.
Float64 embeddings whose largest magnitude lies outside ``2**-400 .. 2**400`` are first scaled by
a power of two (exact), so squared distances neither overflow to inf nor underflow to 0 (where
points would tie and the smallest index, not the farthest point, would win); the centers are
those of the same embeddings at an ordinary scale (one more copy of the embeddings then).

Example
-------
>>> import numpy as np
>>> from engine import kcenter_greedy
>>> pts = np.array([[0.0], [1.0], [10.0], [11.0], [5.0]])
>>> kcenter_greedy(pts, 3, initial=[0]).tolist()
[3, 4, 1]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from engine._blocks import PARALLEL_ROWS, n_blocks
from engine._magnitude import power_of_two_scale
from engine._random import next_u64, seed_state, u64_to_open01
from engine._validate import as_float_2d, as_int64_1d, check_finite, check_int, check_seed, describe
from engine.errors import EngineInputError

__all__ = ["kcenter_greedy"]

@njit(cache=True)
def _update_block(emb, c, mind, lo, hi):  # type: ignore[no-untyped-def]
    """Update rows ``lo:hi``; returns (largest mind, its smallest index) among unselected rows."""
    d = emb.shape[1]
    bv = -1.0
    bi = -1
    for i in range(lo, hi):
        if mind[i] < 0.0:
            continue
        s = 0.0
        row = emb[i]
        for t in range(d):
            u = np.float64(row[t]) - np.float64(c[t])
            s += u * u
        if s < mind[i]:
            mind[i] = s
        if mind[i] > bv:
            bv = mind[i]
            bi = i
    return bv, bi


@njit(cache=True, parallel=True)
def _update_par(emb, c, mind, best_v, best_i):  # type: ignore[no-untyped-def]
    n = emb.shape[0]
    nb = best_v.shape[0]
    for b in prange(nb):
        best_v[b], best_i[b] = _update_block(emb, c, mind, (b * n) // nb, ((b + 1) * n) // nb)


@njit(cache=True)
def _update_and_argmax(emb, center, mind):  # type: ignore[no-untyped-def]
    """``mind = min(mind, ||emb - emb[center]||^2)`` (selected points stay at -1); returns the
    index of the largest ``mind`` (smallest index among ties), or -1 if none is >= 0."""
    n, d = emb.shape
    c = emb[center]
    nb = n_blocks(n * d, PARALLEL_ROWS)
    if nb == 1:
        return _update_block(emb, c, mind, 0, n)[1]
    best_v = np.full(nb, -1.0)
    best_i = np.full(nb, -1, dtype=np.int64)
    _update_par(emb, c, mind, best_v, best_i)
    v = -1.0
    out = -1
    for b in range(nb):
        if best_v[b] > v:
            v = best_v[b]
            out = best_i[b]
    return out


@njit(cache=True)
def _kcenter(emb, k, initial, first):  # type: ignore[no-untyped-def]
    n = emb.shape[0]
    mind = np.full(n, np.inf)
    out = np.empty(k, dtype=np.int64)
    nxt = first
    for c in initial:
        mind[c] = -1.0
    for c in initial:
        nxt = _update_and_argmax(emb, c, mind)
    for t in range(k):
        out[t] = nxt
        mind[nxt] = -1.0
        if t + 1 < k:
            nxt = _update_and_argmax(emb, nxt, mind)
    return out


def kcenter_greedy(embeddings: Any, k: int, *, initial: Any = None, seed: int = 0) -> np.ndarray:
    """Indices of ``min(k, n - len(initial))`` new centers, in the order chosen.

    Parameters
    ----------
    embeddings:
        ``(n, d)`` float32 or float64 array (finite).
    k:
        How many new centers to choose, ``>= 0``.
    initial:
        Indices of centers already chosen (e.g. the previous train set); they are not returned.
    seed:
        Picks the first center uniformly when ``initial`` is empty.

    Returns
    -------
    numpy.ndarray
        int64 row indices, in selection order.
    """
    emb = as_float_2d("embeddings", embeddings)
    check_finite("embeddings", emb)
    if emb.shape[1] == 0 and emb.shape[0] > 0:
        raise EngineInputError("embeddings", describe(emb), "at least one column")
    k = check_int("k", k)
    n = emb.shape[0]
    init = np.empty(0, dtype=np.int64) if initial is None else np.unique(as_int64_1d("initial", initial))
    if init.size and (init[0] < 0 or init[-1] >= n):
        bad = init[0] if init[0] < 0 else init[-1]
        raise EngineInputError("initial", int(bad), f"row indices in [0, {n})")
    k = min(k, n - init.size)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    rng = np.array([seed_state(check_seed("seed", seed))], dtype=np.uint64)
    first = int(_first_index(rng, n)) if init.size == 0 else -1
    if emb.dtype == np.float64:  # float32 squares fit float64: only float64 can overflow or underflow
        emb = power_of_two_scale(emb)[0][0]
    return _kcenter(emb, k, init, first)  # type: ignore[no-any-return]


@njit(cache=True)
def _first_index(rng, n):  # type: ignore[no-untyped-def]
    return np.int64(u64_to_open01(next_u64(rng)) * n)
