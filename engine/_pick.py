"""Picking the best candidates of a ranked selection (see :mod:`engine._ranked`): the ``q``
candidates of largest rank, ties going to the smaller key, then the earlier position.

The k-th largest rank is found by an MSD radix select (:func:`_kth_largest`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine._rank import _I64_MAX, _I64_MIN

__all__ = ["_kth_largest", "_pick_par", "_pick", "_select_one"]

_RADIX_MIN = 1 << 15  # below this many values, one np.partition is as fast
_RADIX_BITS = 11
_RADIX_MASK = (1 << _RADIX_BITS) - 1


@njit(cache=True, inline="always")
def _digit(x, sh):  # type: ignore[no-untyped-def]
    return ((x ^ _I64_MIN) >> sh) & _RADIX_MASK  # sign bit flipped: unsigned order is int64 order


@njit(cache=True)
def _bucket(src, cnt, need, sh, hist):  # type: ignore[no-untyped-def]
    """Counts the digit at ``sh`` of ``src[:cnt]`` into ``hist``; returns the digit holding the
    ``need``-th largest value and ``need`` among the values with that digit."""
    hist[:] = 0
    for j in range(cnt):
        hist[_digit(src[j], sh)] += 1
    b = _RADIX_MASK
    while need > hist[b]:
        need -= hist[b]
        b -= 1
    return b, need


@njit(cache=True)
def _pack(src, cnt, sh, b, dst):  # type: ignore[no-untyped-def]
    """Writes the values of ``src[:cnt]`` whose digit at ``sh`` is ``b`` to the front of ``dst``
    (which may be ``src``); returns how many."""
    w = 0
    for j in range(cnt):
        x = src[j]
        if _digit(x, sh) == b:
            dst[w] = x
            w += 1
    return w


@njit(cache=True)
def _kth_largest(a, q):  # type: ignore[no-untyped-def]
    """The ``q``-th largest value of the int64 array ``a`` (``1 <= q <= len(a)``; ``a`` is left
    as it is).

    An MSD radix select: each pass counts one 11-bit digit of the values still in play and keeps
    those whose digit holds the ``q``-th largest; a pass reads only the values that share every
    earlier digit. Numba's ``np.partition`` costs about 15 ns a value at 10^6 values; a pass
    costs 1-2.
    """
    cnt = a.shape[0]
    if cnt < _RADIX_MIN:
        return np.partition(a, cnt - q)[cnt - q]
    hist = np.empty(_RADIX_MASK + 1, dtype=np.int64)
    shift = 64 - _RADIX_BITS
    b, q = _bucket(a, cnt, q, shift, hist)
    buf = np.empty(hist[b], dtype=np.int64)  # the first pass packs into a buffer of its own
    cnt = _pack(a, cnt, shift, b, buf)
    shift -= _RADIX_BITS
    while cnt >= _RADIX_MIN and shift > -_RADIX_BITS:
        sh = max(shift, 0)
        b, q = _bucket(buf, cnt, q, sh, hist)
        cnt = _pack(buf, cnt, sh, b, buf)
        shift -= _RADIX_BITS
    return np.partition(buf[:cnt], cnt - q)[cnt - q]


@njit(cache=True)
def _tie_cut(tbs, need):  # type: ignore[no-untyped-def]
    """Among candidates tied on the cut rank, with tiebreaks ``tbs`` (in position order), ``need``
    are kept: those with a tiebreak below ``u``, then the first ``at_u`` with tiebreak ``u``
    (equal (rank, key): earlier position first). Returns ``(u, at_u)``."""
    u = np.partition(tbs, need - 1)[need - 1]  # the need-th smallest tiebreak
    at_u = need
    for t in range(tbs.shape[0]):
        at_u -= tbs[t] < u
    return u, at_u


@njit(cache=True)
def _pick(crank, ctb, idx, q, selected):  # type: ignore[no-untyped-def]
    """Mark in ``selected`` the ``q`` best candidates among ``idx`` (rank desc, tiebreak asc)."""
    mg = idx.shape[0]
    if q <= 0:
        return
    if mg <= q:
        for j in range(mg):
            selected[idx[j]] = True
        return
    tmp = np.empty(mg, dtype=np.int64)
    for j in range(mg):
        tmp[j] = crank[idx[j]]
    v = _kth_largest(tmp, q)  # the q-th largest rank
    n_gt = 0
    n_eq = 0
    for j in range(mg):
        r = crank[idx[j]]
        if r > v:
            selected[idx[j]] = True
            n_gt += 1
        elif r == v:
            n_eq += 1
    need = q - n_gt
    ties = np.empty(n_eq, dtype=np.int64)
    t = 0
    for j in range(mg):
        if crank[idx[j]] == v:
            ties[t] = idx[j]
            t += 1
    if n_eq == need:
        for j in range(n_eq):
            selected[ties[j]] = True
        return
    tbs = np.empty(n_eq, dtype=np.int64)
    for j in range(n_eq):
        tbs[j] = ctb[ties[j]]
    u, at_u = _tie_cut(tbs, need)
    for j in range(n_eq):
        tb = tbs[j]
        if tb < u or (tb == u and at_u > 0):
            at_u -= tb == u
            selected[ties[j]] = True


@njit(cache=True)
def _select_one(cpos, crank, keys, use_keys, offset, q):  # type: ignore[no-untyped-def]
    """:func:`select_core`'s pick for a single group: the ``q`` best candidates (rank desc, key
    asc, then position), in position order, in two passes over the candidates and without the
    per-candidate key, order and mark arrays of the grouped path."""
    m = cpos.shape[0]
    k = min(q, m)
    opos = np.empty(max(k, 0), dtype=np.int64)
    orank = np.empty(max(k, 0), dtype=np.int64)
    otb = np.empty(max(k, 0), dtype=np.int64)
    if k <= 0:
        return opos, orank, otb
    take_all = m <= q
    v = _I64_MIN if take_all else _kth_largest(crank, q)  # the q-th largest rank
    u = _I64_MAX  # among ranks equal to v: keys below u, then up to `at_u` keys equal to u
    at_u = m
    if not take_all:
        n_gt = 0
        n_eq = 0
        for j in range(m):
            n_gt += crank[j] > v
            n_eq += crank[j] == v
        need = q - n_gt
        if need < n_eq:
            tbs = np.empty(n_eq, dtype=np.int64)
            t = 0
            for j in range(m):
                if crank[j] == v:
                    tbs[t] = keys[cpos[j]] if use_keys else offset + cpos[j]
                    t += 1
            u, at_u = _tie_cut(tbs, need)
    w = 0
    for j in range(m):
        r = crank[j]
        if not take_all and r < v:
            continue
        tb = keys[cpos[j]] if use_keys else offset + cpos[j]
        if not take_all and r == v:
            if tb > u or (tb == u and at_u <= 0):
                continue
            if tb == u:
                at_u -= 1
        opos[w] = cpos[j]
        orank[w] = r
        otb[w] = tb
        w += 1
    return opos, orank, otb


@njit(cache=True, parallel=True)
def _pick_par(crank, ctb, order, per, quotas, selected):  # type: ignore[no-untyped-def]
    for g in prange(quotas.shape[0]):
        _pick(crank, ctb, order[per[g]:per[g + 1]], quotas[g], selected)
