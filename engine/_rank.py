"""Row ranks: the sortable int64 that orders rows for top-k, sampling and quotas.

A rank is computed per row from a score's float bits (NaN ineligible, -0.0 as +0.0), an int64
rank, a seeded hash of the row's key (uniform sampling) or an Efraimidis-Spirakis key
``log(u) / w`` (weighted sampling); larger ranks are better. :mod:`engine._ranked` selects by
these ranks.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine._random import hash_key, u64_to_open01

__all__ = ["MODE_BITS", "MODE_ES", "MODE_HASH", "MODE_INT", "float_bits"]

MODE_BITS = 0  # vals: float bits (int32 / int64 view); NaN rows are ineligible
MODE_INT = 1  # vals: int64 ranks; every row eligible
MODE_HASH = 2  # rank = SplitMix64(seed, key); every row eligible
MODE_ES = 3  # vals: float64 weights; rank = log(u) / w, u = SplitMix64(seed, key); w == 0 ineligible

_I64_MIN = np.iinfo(np.int64).min
_I64_MAX = np.iinfo(np.int64).max
_F32_BITS = (0x7FFFFFFF, 0x7F800000, -(1 << 31))
_F64_BITS = (0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000, -(1 << 63))
# Ranks of Efraimidis-Spirakis keys below the float64 range: I64_MIN + 1 + (800 - z) * 2**44 for
# z = log(-log u) - log w in (709.7, 748.5]: within (I64_MIN + 1, I64_MIN + 2**52), under the rank
# of -inf (I64_MIN + 2**52 - 1) and above I64_MIN (ineligible)
_BELOW_RANGE = _I64_MIN + 1
_RANK_NEG_INF = _I64_MIN + (1 << 52) - 1  # the rank of the key -inf
_BELOW_TOP = 800.0
_BELOW_SCALE = float(1 << 44)


@njit(cache=True, inline="always")
def _rank(v, kv, j, base, mode, magmask, infbits, signmin, negmask, state,  # type: ignore[no-untyped-def]
          use_keys):
    """Rank of row ``j`` of a block (larger = better); ``I64_MIN`` marks NaN in MODE_BITS.

    Loops index block slices from 0 (never ``range(lo, hi)`` over the whole array): Numba then
    knows the index is non-negative, drops the wraparound check and vectorizes.
    """
    if mode == MODE_BITS:
        b = np.int64(v[j])
        nan = (b & magmask) > infbits
        if b == signmin:  # -0.0 ranks as +0.0
            b = np.int64(0)
        b = b ^ ((b >> 63) & magmask) ^ negmask
        return _I64_MIN if nan else b
    if mode == MODE_INT:
        return np.int64(v[j]) ^ negmask
    tb = kv[j] if use_keys else base + j
    if mode == MODE_ES:
        return _es_rank(v[j], state, tb)
    return np.int64(hash_key(state, tb) >> np.uint64(1)) ^ negmask


@njit(cache=True, inline="always")
def _es_rank(w, state, tb):  # type: ignore[no-untyped-def]
    """Efraimidis-Spirakis key ``log(u) / w`` as a sortable int64 (I64_MIN when w is not > 0).

    A key below the float64 range (a tiny weight: ``w < -log(u) / 1.8e308``) does not become
    -inf, where every such row would tie and the tie-break, not ``u``, would decide: it is ranked
    by ``log(-log u) - log w`` (in (709.7, 748.5], smaller is better) in the ranks below that of
    -inf, which no finite key uses.
    """
    if not w > 0.0:
        return _I64_MIN
    lu = np.log(u64_to_open01(hash_key(state, tb)))
    b = np.float64(lu / w).view(np.int64)
    r = b ^ ((b >> 63) & _I64_MAX)
    if r == _RANK_NEG_INF:  # rare: a key below the float64 range
        r = _BELOW_RANGE + np.int64((_BELOW_TOP - (np.log(-lu) - np.log(w))) * _BELOW_SCALE)
    return r


@njit(cache=True, inline="always")
def _nan_is_min(mode):  # type: ignore[no-untyped-def]
    """Whether rank I64_MIN marks an ineligible row (NaN score, zero weight) in this mode."""
    return mode == MODE_BITS or mode == MODE_ES


@njit(cache=True, inline="always")
def _eligible(mode, r):  # type: ignore[no-untyped-def]
    return not _nan_is_min(mode) or r != _I64_MIN


def float_bits(a: np.ndarray) -> tuple[np.ndarray, int, int, int]:
    """View a float32/float64 array as its integer bits plus the constants ``_rank`` needs."""
    if a.dtype == np.float32:
        return (a.view(np.int32), *_F32_BITS)
    return (a.view(np.int64), *_F64_BITS)
