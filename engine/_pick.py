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
    (which may be ``src``: a write never passes the read); returns how many. ``dst`` holds at
    least one value more than are kept, or is ``src``."""
    w = 0
    for j in range(cnt):  # branch-free (the kept digit is unpredictable): every value is
        x = src[j]  # written, a kept one advances w; ``dst`` needs one slot beyond the count
        dst[w] = x
        w += _digit(x, sh) == b
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
    buf = np.empty(hist[b] + 1, dtype=np.int64)  # the first pass packs into a buffer of its own
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
    per-candidate key, order and mark arrays of the grouped path.

    The kept candidates are packed to the front of ``cpos`` and ``crank`` in place (the caller's
    own temporaries; a write never passes the read), so only the tiebreaks are a new array.
    """
    m = cpos.shape[0]
    k = max(min(q, m), 0)
    otb = np.empty(k + 1, dtype=np.int64)  # one slot of slack for the branch-free pass
    if k == 0:
        return cpos[:0].copy(), crank[:0].copy(), otb[:0]
    if m <= q:  # every candidate is kept
        for j in range(m):
            otb[j] = keys[cpos[j]] if use_keys else offset + cpos[j]
        return cpos, crank, otb[:m]
    v = _kth_largest(crank, q)  # the q-th largest rank
    n_gt = 0
    n_eq = 0
    for j in range(m):
        n_gt += crank[j] > v
        n_eq += crank[j] == v
    need = q - n_gt
    w = 0
    if need == n_eq:  # no tie is cut (the usual case): keep rank >= v, without branches
        for j in range(m):
            r = crank[j]
            p = cpos[j]
            cpos[w] = p
            crank[w] = r
            otb[w] = keys[p] if use_keys else offset + p
            w += r >= v
        return _owned(cpos, k, m), _owned(crank, k, m), otb[:k]
    tbs = np.empty(n_eq, dtype=np.int64)
    t = 0
    for j in range(m):
        if crank[j] == v:
            tbs[t] = keys[cpos[j]] if use_keys else offset + cpos[j]
            t += 1
    u, at_u = _tie_cut(tbs, need)  # among ranks equal to v: keys below u, then at_u equal to u
    for j in range(m):
        r = crank[j]
        if r < v:
            continue
        p = cpos[j]
        tb = keys[p] if use_keys else offset + p
        if r == v:
            if tb > u or (tb == u and at_u <= 0):
                continue
            if tb == u:
                at_u -= 1
        cpos[w] = p
        crank[w] = r
        otb[w] = tb
        w += 1
    return _owned(cpos, k, m), _owned(crank, k, m), otb[:k]


@njit(cache=True, inline="always")
def _owned(a, k, m):  # type: ignore[no-untyped-def]
    """The first ``k`` of ``m`` packed values: a view, or a copy when the view would hold on to a
    buffer more than twice its size (a result of 10 rows out of a million candidates)."""
    return a[:k].copy() if m > 2 * k else a[:k]


@njit(cache=True, parallel=True)
def _pick_par(crank, ctb, order, per, quotas, selected):  # type: ignore[no-untyped-def]
    for g in prange(quotas.shape[0]):
        _pick(crank, ctb, order[per[g]:per[g + 1]], quotas[g], selected)
