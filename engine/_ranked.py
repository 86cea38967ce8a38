"""The ranked-selection kernel behind ``top_k``, sampling and quotas (see ``engine.select``);
rows are ranked by :mod:`engine._rank`.

Every row gets an int64 rank whose order is the wanted order; :func:`select_core` keeps, per
group, the ``quota`` rows of largest rank, ties going to the smaller key. The rank functions are
inlined from :mod:`engine._rank` (Efraimidis-Spirakis keys below the float64 range included, see
``_es_rank``); :mod:`engine._jit` drops these kernels' on-disk caches when that module changes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine._blocks import PARALLEL_ROWS
from engine._pick import _pick, _pick_par, _select_one
from engine._random import hash_key, u64_to_open01
from engine._rank import (
    _I64_MAX,
    _I64_MIN,
    MODE_BITS,
    MODE_ES,
    MODE_HASH,
    MODE_INT,
    _eligible,
    _es_rank,
    _nan_is_min,
    _rank,
)

__all__ = [
    "floor_of",
    "merge_best",
    "run_select",
    "select_core",
]

_SAMPLE = 65536
_SAMPLE_STATE = np.uint64(0x243F6A8885A308D3)  # fixed: the sample is part of no result
_SAMPLE_SLICES = 16  # fixed slices of the sample ranked in parallel
_BLOCK = 65536
_MAX_BLOCKS = 64
_SUB = 1024
_PARALLEL_MIN = 4 * PARALLEL_ROWS  # below this many rows, stay in the calling thread
_PARALLEL_MIN_HASHED = PARALLEL_ROWS  # the same for hashed ranks (a few ns a row: worth it sooner)

_EMPTY_I64 = np.empty(0, dtype=np.int64)
_EMPTY_I64.flags.writeable = False
_F64_TINY = float(np.finfo(np.float64).tiny)  # the smallest normal float64


@njit(cache=True, inline="always")
def _sample_size(n):  # type: ignore[no-untyped-def]
    """Rows in the strided threshold sample (0 = no sampling: every eligible row is a candidate).

    A 64th of the rows, at least 4096 and at most :data:`_SAMPLE`: the sample only places a cut
    with a margin of three standard deviations (the result does not depend on it), and ranking
    a sampled row costs several times what the collecting pass pays per row.
    """
    if n // 16 < 4096:
        return 0
    return min(_SAMPLE, max(n // 64, 4096))


@njit(cache=True, inline="always")
def _sample_row(j, n, s):  # type: ignore[no-untyped-def]
    """Row of the j-th of ``s`` sample points: one at a fixed pseudo-random offset in each of
    ``s`` equal strata, so periodic data (labels cycling with the row number) cannot alias."""
    lo = (j * n) // s
    width = ((j + 1) * n) // s - lo
    # the high 32 bits scaled to the width (no 64-bit division; widths are far below 2**32)
    return lo + np.int64(((hash_key(_SAMPLE_STATE, j) >> np.uint64(32)) * np.uint64(width)) >> np.uint64(32))


@njit(cache=True)
def _rank_sample(vals, n, s, mode, magmask, infbits, signmin, negmask, state, keys, use_keys,  # type: ignore[no-untyped-def]
                 offset, gids, use_groups, quotas, sg, sr, lo, hi):
    """Group and rank of sample points ``lo..hi-1`` into ``sg``/``sr`` (group -1: not counted,
    for an inactive group or an ineligible row)."""
    for j in range(lo, hi):
        i = _sample_row(j, n, s)
        g = gids[i] if use_groups else 0
        sg[j] = -1
        if quotas[g] <= 0:
            continue
        r = _rank(vals, keys, i, offset, mode, magmask, infbits, signmin, negmask, state, use_keys)
        if _eligible(mode, r):
            sg[j] = g
            sr[j] = r


@njit(cache=True, parallel=True)
def _rank_sample_par(vals, n, s, mode, magmask, infbits, signmin, negmask, state, keys, use_keys,  # type: ignore[no-untyped-def]
                     offset, gids, use_groups, quotas, sg, sr):
    """:func:`_rank_sample` of every point, in fixed slices over the threads (the sampled rows
    are scattered over the input: mostly cache misses, and a hash and a log each when hashed)."""
    for c in prange(_SAMPLE_SLICES):
        _rank_sample(vals, n, s, mode, magmask, infbits, signmin, negmask, state, keys, use_keys,
                     offset, gids, use_groups, quotas, sg, sr, (c * s) // _SAMPLE_SLICES,
                     ((c + 1) * s) // _SAMPLE_SLICES)


@njit(cache=True)
def _thresholds(vals, n, mode, magmask, infbits, signmin, negmask, state, keys, use_keys,  # type: ignore[no-untyped-def]
                offset, gids, use_groups, quotas, par):
    """Per-group rank thresholds from a strided sample (I64_MIN = take every eligible row), and
    the share of sampled rows that pass them (sizes the candidate buffer). ``par``: rank the
    sample in parallel (the result is the same)."""
    n_groups = quotas.shape[0]
    thr = np.full(n_groups, _I64_MIN, dtype=np.int64)
    s = _sample_size(n)
    if s == 0:
        return thr, 1.0
    sg = np.empty(s, dtype=np.int64)
    sr = np.empty(s, dtype=np.int64)
    if par:
        _rank_sample_par(vals, n, s, mode, magmask, infbits, signmin, negmask, state, keys,
                         use_keys, offset, gids, use_groups, quotas, sg, sr)
    else:
        _rank_sample(vals, n, s, mode, magmask, infbits, signmin, negmask, state, keys, use_keys,
                     offset, gids, use_groups, quotas, sg, sr, 0, s)
    sc = np.zeros(n_groups + 1, dtype=np.int64)
    m = 0
    for j in range(s):  # the counted points packed to the front, in sample order
        g = sg[j]
        if g >= 0:
            sg[m] = g
            sr[m] = sr[j]
            sc[g + 1] += 1
            m += 1
    for g in range(n_groups):
        sc[g + 1] += sc[g]
    fill = sc[:-1].copy()
    by_group = np.empty(m, dtype=np.int64)
    for j in range(m):
        g = sg[j]
        by_group[fill[g]] = sr[j]
        fill[g] += 1
    passing = 0
    for g in range(n_groups):
        cnt = sc[g + 1] - sc[g]
        passing += cnt
        if cnt == 0 or quotas[g] <= 0:
            continue
        f = quotas[g] / (cnt * (n / s))  # share of the group's rows wanted
        if f >= 1.0:
            continue
        want = f * cnt
        j = int(want + 3.0 * np.sqrt(want) + 2.0)
        if j >= cnt:
            continue
        seg = by_group[sc[g]:sc[g + 1]]
        thr[g] = np.partition(seg, cnt - 1 - j)[cnt - 1 - j]  # the (j+1)-th largest sampled rank
        passing -= cnt - (j + 1)
    return thr, passing / s


@njit(cache=True)
def _ranks_into(v, kv, n_rows, base, mode, magmask, infbits, signmin, negmask, state, use_keys,  # type: ignore[no-untyped-def]
                es_cut, out, scratch):
    """Ranks of one sub-block into ``out`` (one simple loop per mode, so each vectorizes).

    In MODE_ES a row whose ``u - 1 < es_cut * w`` cannot reach the threshold (``log u <= u - 1``)
    and gets I64_MIN without computing the logarithm; ``es_cut = -inf`` disables the shortcut.
    The rows that need it are listed in ``scratch`` first and ranked in a second loop: with the
    log behind a branch in one loop, LLVM would speculate it for every row.
    """
    if mode == MODE_BITS:
        for j in range(n_rows):
            b = np.int64(v[j])
            nan = (b & magmask) > infbits
            b = np.int64(0) if b == signmin else b
            b = b ^ ((b >> 63) & magmask) ^ negmask
            out[j] = _I64_MIN if nan else b
    elif mode == MODE_INT:
        for j in range(n_rows):
            out[j] = np.int64(v[j]) ^ negmask
    elif mode == MODE_ES:
        m = 0
        for j in range(n_rows):
            u = u64_to_open01(hash_key(state, kv[j] if use_keys else base + j))
            out[j] = _I64_MIN
            scratch[m] = j  # branch-free: a kept row advances m (about 10% are kept)
            m += u - 1.0 >= es_cut * v[j]
        for t in range(m):
            j = scratch[t]
            out[j] = _es_rank(v[j], state, kv[j] if use_keys else base + j)
    elif use_keys:
        for j in range(n_rows):
            out[j] = np.int64(hash_key(state, kv[j]) >> np.uint64(1)) ^ negmask
    else:
        for j in range(n_rows):
            out[j] = np.int64(hash_key(state, base + j) >> np.uint64(1)) ^ negmask


@njit(cache=True)
def _count_passing(ranks, gv, n_rows, use_groups, teff):  # type: ignore[no-untyped-def]
    c = 0
    if use_groups:
        for j in range(n_rows):
            c += ranks[j] >= teff[gv[j]]
    else:
        t = teff[0]
        for j in range(n_rows):
            c += ranks[j] >= t
    return c


@njit(cache=True)
def _passing_fraction(vals, n, mode, magmask, infbits, signmin, negmask, state, keys, use_keys,  # type: ignore[no-untyped-def]
                      offset, gids, use_groups, teff):
    """Share of the strided sample whose rank reaches ``teff`` (1.0 when not sampling)."""
    s = _sample_size(n)
    if s == 0:
        return 1.0
    c = 0
    for j in range(s):
        i = _sample_row(j, n, s)
        g = gids[i] if use_groups else 0
        r = _rank(vals, keys, i, offset, mode, magmask, infbits, signmin, negmask, state, use_keys)
        c += r >= teff[g]
    return c / s


@njit(cache=True)
def _es_cut(mode, use_groups, teff):  # type: ignore[no-untyped-def]
    """The ES shortcut bound: the (negative, finite) key threshold, relaxed by 1e-9 against
    rounding; -inf (no shortcut) when it does not apply.

    A subnormal threshold (weights near 1e300) gets no shortcut: a subnormal key is rounded to
    an absolute step, up to ~1e-8 of itself, and the relaxation would round away, so a row
    whose key ties the cut could be skipped before its tiebreak is looked at.
    """
    if mode != MODE_ES or use_groups or teff[0] >= 0 or teff[0] <= _I64_MIN + 1:
        return -np.inf
    key = np.int64(teff[0] ^ _I64_MAX).view(np.float64)  # invert the sortable map (negatives)
    if not (-np.inf < key < -_F64_TINY):
        return -np.inf
    return key * (1.0 + 1e-9)


@njit(cache=True)
def _collect_block(vals, n, mode, magmask, infbits, signmin, negmask, state, keys, use_keys,  # type: ignore[no-untyped-def]
                   offset, gids, use_groups, teff, b, nb, opos, orank,
                   start, end):
    """Append block ``b``'s passing positions and ranks to ``opos/orank[start:end]``; returns
    how many pass (more than ``end - start`` means the region overflowed and is incomplete)."""
    lo = (b * n) // nb
    hi = ((b + 1) * n) // nb
    buf = np.empty(_SUB, dtype=np.int64)
    scratch = np.empty(_SUB, dtype=np.int64)
    es_cut = _es_cut(mode, use_groups, teff)
    w = start
    seen = 0
    for s0 in range(lo, hi, _SUB):
        s1 = min(s0 + _SUB, hi)
        gv = gids[s0:s1]
        _ranks_into(vals[s0:s1], keys[s0:s1], s1 - s0, offset + s0, mode, magmask, infbits,
                    signmin, negmask, state, use_keys, es_cut, buf, scratch)
        c = _count_passing(buf, gv, s1 - s0, use_groups, teff)  # vectorized; most are 0
        if c == 0:
            continue
        seen += c
        if seen > end - start:
            continue
        if not use_groups and seen < end - start and c * 16 >= s1 - s0:
            # many pass (a sample's candidates): branch-free, every row is written and a passing
            # one advances w; the region keeps a slot beyond the last passing row for the rest
            t = teff[0]
            for j in range(s1 - s0):
                opos[w] = s0 + j
                orank[w] = buf[j]
                w += buf[j] >= t
            continue
        for j in range(s1 - s0):
            g = gv[j] if use_groups else 0
            if buf[j] >= teff[g]:
                opos[w] = s0 + j
                orank[w] = buf[j]
                w += 1
    return seen


@njit(cache=True, parallel=True)
def _collect(vals, n, mode, magmask, infbits, signmin, negmask, state, keys, use_keys,  # type: ignore[no-untyped-def]
             offset, gids, use_groups, teff, frac):
    """Positions (ascending) and ranks of the rows whose rank reaches their group's threshold.

    One pass over fixed blocks, each appending to its own region of buffers sized from the
    sampled pass rate ``frac``; the regions are then closed up in place. Only if a region
    overflows is the pass repeated, into exactly sized regions (the first pass counted them).
    Blocks are fixed, so the result does not depend on the thread count.
    """
    nb = min(max(1, n // _BLOCK), _MAX_BLOCKS)
    per_block = (n + nb - 1) // nb
    expect = frac * per_block
    cap = min(per_block, int(1.25 * expect + 6.0 * np.sqrt(expect) + 1024.0))
    opos = np.empty(nb * cap, dtype=np.int64)
    orank = np.empty(nb * cap, dtype=np.int64)
    counts = np.empty(nb, dtype=np.int64)
    for b in prange(nb):
        counts[b] = _collect_block(vals, n, mode, magmask, infbits, signmin, negmask, state, keys,
                                   use_keys, offset, gids, use_groups, teff, b, nb, opos, orank,
                                   b * cap, (b + 1) * cap)
    offs = np.empty(nb + 1, dtype=np.int64)
    offs[0] = 0
    overflow = False
    for b in range(nb):
        offs[b + 1] = offs[b] + counts[b]
        overflow |= counts[b] > cap
    if not overflow:
        for b in range(nb):  # close the gaps; destinations never pass their sources
            for t in range(counts[b]):
                opos[offs[b] + t] = opos[b * cap + t]
                orank[offs[b] + t] = orank[b * cap + t]
        return _trimmed(opos, orank, offs[nb], nb * cap)
    opos = np.empty(offs[nb], dtype=np.int64)
    orank = np.empty(offs[nb], dtype=np.int64)
    for b in prange(nb):
        _collect_block(vals, n, mode, magmask, infbits, signmin, negmask, state, keys, use_keys,
                       offset, gids, use_groups, teff, b, nb, opos, orank, offs[b], offs[b + 1])
    return opos, orank


@njit(cache=True, inline="always")
def _trimmed(opos, orank, m, size):  # type: ignore[no-untyped-def]
    """The first ``m`` candidates of buffers of ``size``: views, or copies when the buffers are
    mostly empty (a result should not hold on to them)."""
    if size > 2 * m:
        return opos[:m].copy(), orank[:m].copy()
    return opos[:m], orank[:m]


@njit(cache=True)
def _collect_serial(vals, n, mode, magmask, infbits, signmin, negmask, state, keys, use_keys,  # type: ignore[no-untyped-def]
                    offset, gids, use_groups, teff):
    """:func:`_collect` for small inputs, in the calling thread (no parallel region to launch)."""
    opos = np.empty(n, dtype=np.int64)
    orank = np.empty(n, dtype=np.int64)
    m = _collect_block(vals, n, mode, magmask, infbits, signmin, negmask, state, keys, use_keys,
                       offset, gids, use_groups, teff, 0, 1, opos, orank, 0, n)
    return _trimmed(opos, orank, m, n)


@njit(cache=True)
def _effective(thr, quotas, mode, floor):  # type: ignore[no-untyped-def]
    """Fold "group inactive", "NaN is ineligible" and the caller's floor into one threshold.

    Inactive groups get I64_MAX (a rank equal to it becomes a harmless candidate of a group with
    quota 0); "take all" in MODE_BITS starts above I64_MIN, the rank of NaN; no threshold goes
    below ``floor`` (ranks that cannot make the result, known to a streaming caller).
    """
    teff = thr.copy()
    for g in range(thr.shape[0]):
        if quotas[g] <= 0:
            teff[g] = _I64_MAX
            continue
        if thr[g] == _I64_MIN and _nan_is_min(mode):
            teff[g] = _I64_MIN + 1
        teff[g] = max(teff[g], floor[g])
    return teff


@njit(cache=True)
def select_core(vals, n, mode, magmask, infbits, signmin, negmask, state, keys, use_keys,  # type: ignore[no-untyped-def]
                offset, gids, use_groups, quotas, floor):
    """Keep, per group g, the ``quotas[g]`` eligible rows of largest rank (ties: smaller key),
    among the rows whose rank is at least ``floor[g]``.

    Returns ``(positions, ranks, keys)`` of the kept rows in ascending position order. ``keys`` are
    the tiebreak keys (``keys[i]`` or ``offset + i``).
    """
    n_groups = quotas.shape[0]
    hashed = mode == MODE_ES or mode == MODE_HASH
    par_min = _PARALLEL_MIN_HASHED if hashed else _PARALLEL_MIN
    thr, frac = _thresholds(vals, n, mode, magmask, infbits, signmin, negmask, state, keys,
                            use_keys, offset, gids, use_groups, quotas, n >= par_min)
    while True:
        teff = _effective(thr, quotas, mode, floor)
        if n < par_min:
            cpos, crank = _collect_serial(vals, n, mode, magmask, infbits, signmin, negmask,
                                          state, keys, use_keys, offset, gids, use_groups, teff)
        else:
            cpos, crank = _collect(vals, n, mode, magmask, infbits, signmin, negmask, state, keys,
                                   use_keys, offset, gids, use_groups, teff, frac)
        m = cpos.shape[0]
        per = np.zeros(n_groups + 1, dtype=np.int64)
        if use_groups:
            for j in range(m):
                per[gids[cpos[j]] + 1] += 1
        else:
            per[1] = m
        retry = False
        for g in range(n_groups):
            if per[g + 1] < quotas[g] and thr[g] != _I64_MIN and thr[g] > floor[g]:
                thr[g] = _I64_MIN  # the sample misled us: take the whole group
                retry = True
        if not retry:  # a retry lowers thresholds to I64_MIN, so it happens at most once
            break
        frac = _passing_fraction(vals, n, mode, magmask, infbits, signmin, negmask, state, keys,
                                 use_keys, offset, gids, use_groups,
                                 _effective(thr, quotas, mode, floor))
    if n_groups == 1:
        return _select_one(cpos, crank, keys, use_keys, offset, quotas[0])
    ctb = np.empty(m, dtype=np.int64)
    for j in range(m):
        ctb[j] = keys[cpos[j]] if use_keys else offset + cpos[j]
    for g in range(n_groups):
        per[g + 1] += per[g]
    order = np.empty(m, dtype=np.int64)
    if use_groups:
        fill = per[:-1].copy()
        for j in range(m):  # stable counting sort by group
            g = gids[cpos[j]]
            order[fill[g]] = j
            fill[g] += 1
    else:
        for j in range(m):
            order[j] = j
    selected = np.zeros(m, dtype=np.bool_)
    if n_groups == 1 or m < _PARALLEL_MIN:
        for g in range(n_groups):
            _pick(crank, ctb, order[per[g]:per[g + 1]], quotas[g], selected)
    else:
        _pick_par(crank, ctb, order, per, quotas, selected)
    k = 0
    for j in range(m):
        k += selected[j]
    opos = np.empty(k, dtype=np.int64)
    orank = np.empty(k, dtype=np.int64)
    otb = np.empty(k, dtype=np.int64)
    w = 0
    for j in range(m):
        if selected[j]:
            opos[w] = cpos[j]
            orank[w] = crank[j]
            otb[w] = ctb[j]
            w += 1
    return opos, orank, otb


def run_select(
    n: int,
    quotas: np.ndarray,
    *,
    mode: int,
    vals: np.ndarray = _EMPTY_I64,
    bits: tuple[int, int, int] = (0, 0, 0),
    negate: bool = False,
    state: np.uint64 = np.uint64(0),
    keys: np.ndarray | None = None,
    offset: int = 0,
    gids: np.ndarray | None = None,
    floor: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Call :func:`select_core` with defaults filled in (for the engine's own wrappers)."""
    magmask, infbits, signmin = bits
    quotas = np.ascontiguousarray(quotas, dtype=np.int64)
    if floor is None:
        floor = np.full(quotas.shape[0], _I64_MIN, dtype=np.int64)
    return select_core(  # type: ignore[no-any-return]
        _read_only(vals), n, mode, magmask, infbits, signmin, np.int64(-1 if negate else 0), np.uint64(state),
        _EMPTY_I64 if keys is None else _read_only(keys), keys is not None, np.int64(offset),
        _EMPTY_I64 if gids is None else _read_only(gids), gids is not None, _read_only(quotas),
        _read_only(np.ascontiguousarray(floor, dtype=np.int64)),
    )


def _read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a`` (no copy). Numba compiles a kernel once per argument type, and a
    read-only array (one Arrow or Lance lent) is another type than a writable one: without this, a
    pipeline whose warm-up saw only writable keys compiled again in its first timed selection."""
    if not a.flags.writeable:
        return a
    view = a.view()
    view.flags.writeable = False
    return view


def floor_of(ranks: np.ndarray, k: int) -> np.ndarray | None:
    """The floor for a streaming chunk: once ``k`` rows are kept, a new row needs a rank of at
    least the worst kept one (equal ranks may still win on the key)."""
    return np.array([ranks.min()]) if k > 0 and ranks.shape[0] >= k else None


def merge_best(ranks: np.ndarray, tbs: np.ndarray, k: int) -> np.ndarray:
    """Indices (ascending) of the ``k`` best (rank desc, key asc) of already-ranked rows."""
    q = min(k, ranks.shape[0])  # a k beyond int64 keeps every row
    pos, _, _ = run_select(ranks.shape[0], np.array([q]), mode=MODE_INT, vals=ranks, keys=tbs)
    return pos


