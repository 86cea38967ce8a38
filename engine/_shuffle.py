"""``np.random.default_rng(seed).permutation(x)``, bit for bit, in about half its time.

A training epoch's order is a seeded permutation of its rows, and every recorded training is
reproduced from that seed: the order must stay NumPy's. NumPy draws it by a Fisher-Yates
shuffle from the end (for ``i = n - 1 .. 1``, swap ``x[i]`` with ``x[j]``), each ``j`` drawn
by masked rejection from 32-bit halves of the PCG64 stream, low half first: ``v = u32 & mask``
(``mask`` the smallest ``2^k - 1 >= i``), drawn again while ``v > i``. About 28% of the draws
are rejected in no predictable pattern, so the branch that decides it mispredicts, and each
mispredict also discards the reads of ``x`` in flight: that, not the generator, is most of the
shuffle's time (docs/PERFORMANCE.md, "Epoch orders drawn by a branchless kernel").

Here the raw 64-bit outputs come from NumPy's own generator (``BitGenerator.random_raw``: the
same stream, in chunks), and one kernel consumes them without a branch on the draw: every
draw swaps ``x[i]`` with ``x[j]``, where ``j`` is the draw if it was accepted and ``i`` itself
(a swap that changes nothing) if not, and ``i`` moves down by the accepted count. The mask
halves as ``i`` falls below it. A chunk that runs out mid-shuffle is followed by the next
chunk of the same stream: the kernel only ever stops after both halves of its last output.

:func:`permutation` checks once per process that it agrees with NumPy's (:func:`agrees`) and
falls back to NumPy where it does not, or where NumPy would draw differently (over 2^32
positions: 64-bit draws; a generator holding half an output: never for a fresh one).

Example
-------
>>> import numpy as np
>>> x = np.arange(10, 20)
>>> permutation([7, 1], x).tolist() == np.random.default_rng([7, 1]).permutation(x).tolist()
True
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numba import njit

__all__ = ["agrees", "permutation"]

_M32 = np.uint64(0xFFFFFFFF)
_ONE = np.uint64(1)
_32 = np.uint64(32)
#: NumPy draws 32-bit halves for every ``i`` up to this (64-bit outputs above it)
_U32_MAX = 0xFFFFFFFF
_I32_MAX = 2**31 - 1
#: raw outputs a position needs, on average (1.39 draws of 32 bits a position at most sizes),
#: with a margin: a first chunk this long seldom needs a second
_RAW_PER_POSITION = 0.75


@njit(cache=True, nogil=True)
def _consume(x: np.ndarray, i: int, raw: np.ndarray) -> int:  # pragma: no cover - compiled
    """Fisher-Yates steps on ``x`` from position ``i`` down, drawing from ``raw`` (both halves
    of each output, low first); the position reached (0: done)."""
    if i <= 0:
        return 0
    mask = np.uint64(i)
    mask |= mask >> np.uint64(1)
    mask |= mask >> np.uint64(2)
    mask |= mask >> np.uint64(4)
    mask |= mask >> np.uint64(8)
    mask |= mask >> np.uint64(16)
    for d in range(2 * raw.size):
        r = raw[d >> 1]
        half = (r >> _32) if (d & 1) else (r & _M32)
        v = np.int64(half & mask)
        accepted = v <= i
        j = v if accepted else i  # (a rejected draw swaps x[i] with itself)
        t = x[i]
        x[i] = x[j]
        x[j] = t
        i -= np.int64(accepted)
        mask >>= _ONE if np.uint64(i) <= (mask >> _ONE) else np.uint64(0)
        if i == 0:
            return 0
    return i


def _shuffle(generator: np.random.Generator, out: np.ndarray) -> None:
    """Shuffle the contiguous 1-D int32 or int64 ``out`` in place as ``generator.shuffle`` would."""
    bits: Any = generator.bit_generator
    i = out.size - 1
    while i > 0:
        raw = bits.random_raw(max(64, int(i * _RAW_PER_POSITION) + 64))
        i = _consume(out, i, raw)


def _numpy_like(generator: np.random.Generator, n: int) -> bool:
    """Whether NumPy draws this shuffle as :func:`_consume` does (see the module docstring)."""
    bits = generator.bit_generator
    return (
        type(bits) is np.random.PCG64 and n - 1 <= _U32_MAX and not bits.state.get("has_uint32", 0)
    )


@functools.cache
def agrees() -> bool:
    """Whether :func:`_shuffle` gives NumPy's permutations in this process (checked once, on
    sizes that need one and several chunks of the stream)."""
    for seed, n in (([3, 1], 1), ([3, 1], 2), ([0, 0], 97), (12345, 4099), ([7, 2**40], 70_001)):
        for dtype in (np.int64, np.int32):
            ours = np.arange(n, dtype=dtype)
            generator = np.random.default_rng(seed)
            if not _numpy_like(generator, n):
                return False
            _shuffle(generator, ours)
            if not np.array_equal(ours, np.random.default_rng(seed).permutation(n)):
                return False
    return True


def permutation(seed: Any, x: np.ndarray | int) -> np.ndarray:
    """``np.random.default_rng(seed).permutation(x)`` for a 1-D integer array ``x`` (as int64;
    uint64 and other arrays as NumPy returns them) or a count ``x`` (``arange(x)``): the same
    array, drawn by :func:`_consume` where NumPy would draw as it does, else by NumPy."""
    generator = np.random.default_rng(seed)
    if isinstance(x, (int, np.integer)):
        n, arr = int(x), None
    else:
        arr = np.asarray(x)
        if arr.ndim != 1 or arr.dtype.kind not in "iu" or arr.dtype == np.uint64:
            return generator.permutation(arr)  # type: ignore[no-any-return]  # (uint64: not as int64)
        n = arr.size
    if n > 1 and _numpy_like(generator, n) and agrees():
        # values that fit are shuffled as int32: half the bytes for the random swaps to miss
        # in the caches (an epoch's order is drawn right after gathers that evicted them)
        if arr is None:
            work = np.arange(n, dtype=np.int32 if n <= _I32_MAX + 1 else np.int64)
        elif arr.min() >= -_I32_MAX - 1 and arr.max() <= _I32_MAX:
            work = arr.astype(np.int32)
        else:
            work = np.array(arr, dtype=np.int64, copy=True, order="C")
        _shuffle(generator, work)
        return work.astype(np.int64, copy=False)
    out = np.arange(n, dtype=np.int64) if arr is None else np.array(arr, dtype=np.int64, copy=True, order="C")
    generator.shuffle(out)
    return out
