"""Membership in a sorted int64 key set, in NumPy (and the kernels of :mod:`engine._bloom`
where the process has loaded Numba already: :class:`HashedKeys`).

This is the path :func:`engine.sets.isin_sorted` takes for inputs under ``NUMPY_BELOW``
elements, and the one the store's queries call directly: a query never waits for a kernel to
compile or load from Numba's cache, and ``import modyn_store`` never imports Numba.
Inputs are trusted here (1-D int64, ``sorted_b`` ascending); :func:`engine.sets.isin_sorted`
is the checked entry point.

Example
-------
>>> import numpy as np
>>> isin_sorted_numpy(np.array([5, 1, 4]), np.array([1, 2, 5])).tolist()
[True, True, False]
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from engine._scratch import scratch

__all__ = [
    "HashedKeys", "first_unsorted", "hit_positions", "intersect_keys", "isin_sorted_numpy", "numba_loaded", "setdiff_keys",
    "sorted_unique", "union_keys", "unsorted_hits",
]


#: elements a sortedness check looks at first: keys in no order show it there, and the check
#: then skips its pass over the whole array
PROBE = 32


def first_unsorted(a: np.ndarray) -> int:
    """The smallest ``i`` with ``a[i] < a[i - 1]``, or -1 when ``a`` is sorted ascending.

    >>> first_unsorted(np.array([1, 2, 2, 5])), first_unsorted(np.array([1, 3, 2, 0]))
    (-1, 2)
    """
    if a.size > PROBE:
        head = a[: PROBE + 1]
        bad = np.flatnonzero(head[1:] < head[:-1])
        if bad.size:
            return int(bad[0]) + 1
    bad = np.flatnonzero(a[1:] < a[:-1])
    return int(bad[0]) + 1 if bad.size else -1


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values of the int64 keys ``a`` (``np.unique(a)``, a new array): a stable
    sort (linear on the few sorted runs keys usually come in) and one comparison pass.

    NumPy 2.4's ``np.unique`` finds the distinct values of an integer array through a hash set
    first: about 1 us a key once the set outgrows the caches, 10-700 times this function's time
    on 10^5-10^7 keys (``docs/PERFORMANCE.md``, "Distinct keys"). The store, the policies and the
    training code take the distinct values, unions, intersections and differences of key arrays
    through these functions.

    >>> sorted_unique(np.array([5, 1, 5, 3])).tolist()
    [1, 3, 5]
    """
    if a.size == 0:
        return np.empty(0, dtype=np.int64)
    s = np.sort(a, kind="stable")
    if s.size > 1:
        new = s[1:] != s[:-1]
        if not new.all():
            s = s[np.concatenate([[True], new])]
    return s


def union_keys(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.union1d(a, b)`` of int64 keys, without its hash set (see :func:`sorted_unique`).

    >>> union_keys(np.array([4, 1, 4]), np.array([2, 1])).tolist()
    [1, 2, 4]
    """
    return sorted_unique(np.concatenate([np.asarray(a, np.int64).ravel(), np.asarray(b, np.int64).ravel()]))


def intersect_keys(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.intersect1d(a, b)`` of int64 keys: sorted distinct values in both.

    >>> intersect_keys(np.array([4, 1, 4, 9]), np.array([9, 4, 2])).tolist()
    [4, 9]
    """
    ua = sorted_unique(np.asarray(a, np.int64).ravel())
    return ua[isin_sorted_numpy(ua, sorted_unique(np.asarray(b, np.int64).ravel()))]  # type: ignore[no-any-return]


def setdiff_keys(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.setdiff1d(a, b)`` of int64 keys: sorted distinct values of ``a`` not in ``b``.

    >>> setdiff_keys(np.array([4, 1, 4, 9]), np.array([9, 2])).tolist()
    [1, 4]
    """
    ua = sorted_unique(np.asarray(a, np.int64).ravel())
    return ua[~isin_sorted_numpy(ua, sorted_unique(np.asarray(b, np.int64).ravel()))]  # type: ignore[no-any-return]


def hit_positions(sorted_a: np.ndarray, sorted_b: np.ndarray) -> np.ndarray:
    """Ascending positions ``i`` of the ascending ``sorted_a`` whose ``sorted_a[i]`` occurs in the
    ascending, distinct ``sorted_b``: every copy of a value that occurs more than once in ``sorted_a``.

    Only the part of ``sorted_b`` within ``[sorted_a[0], sorted_a[-1]]`` is searched, in
    ``sorted_a``: O(|b| log |a|), and no pass over ``sorted_a`` (the store drops a batch's dead
    keys by position, never by a full boolean mask).

    >>> hit_positions(np.array([1, 3, 3, 7, 9]), np.array([0, 3, 9])).tolist()
    [1, 2, 4]
    """
    if sorted_a.size == 0 or sorted_b.size == 0:
        return np.empty(0, dtype=np.intp)
    first = int(np.searchsorted(sorted_b, sorted_a[0], side="left"))
    last = int(np.searchsorted(sorted_b, sorted_a[-1], side="right"))
    b = sorted_b[first:last]
    if b.size == 0:
        return np.empty(0, dtype=np.intp)
    lo = np.searchsorted(sorted_a, b, side="left")
    hi = np.searchsorted(sorted_a, b, side="right")
    runs = hi - lo
    if int(runs.max()) <= 1:
        return lo[runs > 0]  # type: ignore[no-any-return]
    lo, runs = lo[runs > 0], runs[runs > 0]
    # every position of each run: lo[j], lo[j] + 1, ..., hi[j] - 1
    starts = np.repeat(lo - (np.cumsum(runs) - runs), runs)
    return starts + np.arange(starts.size)  # type: ignore[no-any-return]


def isin_sorted_numpy(a: np.ndarray, sorted_b: np.ndarray) -> np.ndarray:
    """Boolean mask: which elements of ``a`` occur in the ascending ``sorted_b``.

    When ``a`` is sorted (a batch of a scan, a snapshot's keys), only the part of ``sorted_b``
    within ``[a[0], a[-1]]`` is used, and when ``a`` is over 8 times longer than that part (live
    keys vs deleted keys) it is searched in ``a``: O(|b| log |a|) searches instead of
    O(|a| log |b|); hits are marked directly when each value of ``sorted_b`` occurs at most once
    in ``a`` (always for a snapshot's keys), else by a running count over ``a``. A long
    unsorted ``a`` (user keys in no order) goes through a table of ``sorted_b`` first
    (:class:`HashedKeys`: direct where ``sorted_b`` spans few values, else a hashed prefilter):
    ~2-5 ns a key instead of ~50.
    """
    if a.size == 0 or sorted_b.size == 0:
        return np.zeros(a.size, dtype=bool)
    if first_unsorted(a) < 0:
        first = int(np.searchsorted(sorted_b, a[0], side="left"))
        last = int(np.searchsorted(sorted_b, a[-1], side="right"))
        b = sorted_b[first:last]
        if b.size == 0:
            return np.zeros(a.size, dtype=bool)
        if a.size > 8 * b.size:
            lo = np.searchsorted(a, b, side="left")
            hi = np.searchsorted(a, b, side="right")
            if int((hi - lo).max()) <= 1:
                # distinct hits (a snapshot's keys are unique): mark them, no running count
                out = np.zeros(a.size, dtype=bool)
                out[lo[hi > lo]] = True
                return out
            edges = np.zeros(a.size + 1, dtype=np.int64)
            np.add.at(edges, lo, 1)
            np.add.at(edges, hi, -1)
            return np.cumsum(edges[:-1]) > 0
        return _isin_searched(a, b)  # (sorted keys: NumPy's search narrows from the last hit)
    hashed = _hashed_for(a, sorted_b)
    if hashed is None:
        return _isin_searched(a, sorted_b)
    out = np.zeros(a.size, dtype=bool)
    out[hashed.hits(a)] = True
    return out


#: an unsorted ``a`` of at least this many keys, and at least a quarter as many as ``sorted_b``
#: (the table costs a few ns a key of ``sorted_b``, the search it saves ~50 ns a key of ``a``),
#: is prefiltered by hash (see :class:`HashedKeys`)
PREFILTER_MIN = 1 << 12
#: table slots per key of the set: about 1 - exp(-1/64) = 1.6% of keys not in it pass the
#: filter. The table (a bit a slot) has at most 2^PREFILTER_BITS slots (1 MiB: it stays in a
#: core's cache between the batches of a stream, where a byte table of 8 MiB missed it at ~15 ns
#: a key); a table of one call is also kept under 4 bytes a key of ``a`` (filling it must not
#: cost more than hashing ``a``). With fewer than 16 slots a key the filter is not worth its passes.
PREFILTER_SLOTS = 64
PREFILTER_BITS = 23
#: tables of at most 2^BYTE_TABLE_BITS slots keep a byte a slot (at most 1 MiB, as cache-friendly
#: as the largest bit table): one gather and no bit extraction, 15% faster lookups
BYTE_TABLE_BITS = 20
#: the most bits the kernels' filter of a large set takes (64 MiB: 16 bits a key up to 2^25 keys)
MAX_BLOOM_BITS = 29
_FIB = np.uint64(0x9E3779B97F4A7C15)
_ZERO, _ONE, _SIX, _63 = np.uint64(0), np.uint64(1), np.uint64(6), np.uint64(63)


def _isin_searched(a: np.ndarray, sorted_b: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(sorted_b, a)
    idx[idx == sorted_b.size] = 0
    return sorted_b[idx] == a  # type: ignore[no-any-return]


def numba_loaded() -> bool:
    """Whether this process has imported Numba (a pipeline, a policy, a training that scores): only
    then does a spread key set go to the kernels (:mod:`engine._bloom`) by default. Elsewhere
    their first use would cost Numba's import and the kernels' load (~0.6 s with a warm cache,
    seconds without), more than the NumPy filter loses on the reads of most processes."""
    return "numba" in sys.modules


def _hashed_for(a: np.ndarray, sorted_b: np.ndarray) -> HashedKeys | None:
    """A :class:`HashedKeys` of ``sorted_b`` for one call on the unsorted ``a``, or ``None`` where
    a plain search is as fast (``a`` short, or ``sorted_b`` many times longer)."""
    if a.size < PREFILTER_MIN or sorted_b.size > 4 * a.size:
        return None
    return HashedKeys.for_batch(sorted_b, a.size)


class HashedKeys:
    """The ascending, distinct keys ``sorted_b``, ready to find in batches of keys in any order.

    A binary search per key in ``sorted_b`` costs ~50 ns (branchy, one cache miss per level).
    Where ``sorted_b`` spans at most 2^(max_bits + 1) values (its last minus its first key; the
    dead keys of a store whose keys are dense), the table is **direct**: slot ``key - first + 1`` of
    a table of the span is marked for each key of ``sorted_b``, and the table's answer is exact
    (no search; keys outside the span land on unmarked end slots through a clipped gather or a
    clamp, in unsigned arithmetic that cannot wrap into the span). Otherwise each key is
    hashed (multiply by the 64-bit golden ratio, keep the top bits) into a table marking the
    slots of ``sorted_b``'s keys, and only the keys landing on a marked slot are searched:
    the table is only a filter there, every answer comes from the search, whatever the keys'
    hashes. Either table keeps a byte a slot up to 2^BYTE_TABLE_BITS slots and a bit a slot
    above: ~2-13 ns a key (the table in or out of cache). Where the kernels pay
    (``kernel``; ``None``: where Numba is loaded, :func:`numba_loaded`), a spread set goes to
    :class:`engine._bloom.KeySet` instead (a filter and an exact stage read by one kernel: about
    2x faster than the NumPy filter at 10^6-10^7 keys with 1% in the set, 60x at 10^8, where
    NumPy has no table; ``benchmarks/spread_keys.py``). Built
    once, it serves every batch of a stream; the caller must not change ``sorted_b``
    meanwhile. ``max_bits``: at most 2^max_bits slots in a hashed table (the kernels' filter
    may take more), 2^(max_bits + 1) in a direct one.

    >>> HashedKeys(np.array([2, 3, 9])).hits(np.array([9, 2, 7, 2])).tolist()
    [0, 1, 3]
    """

    def __init__(self, sorted_b: np.ndarray, max_bits: int = PREFILTER_BITS, *, kernel: bool | None = None) -> None:
        self.keys = sorted_b
        bits = min(max(int(sorted_b.size * PREFILTER_SLOTS - 1).bit_length(), 8), max_bits)
        self._shift = np.uint64(64 - bits)
        self._table: np.ndarray | None = None
        self._bytes: np.ndarray | None = None
        self._set: Any = None  # an engine._bloom.KeySet (the kernels' filter and hash set), if taken
        # direct tables: slot = key - self._base (uint64), clamped to self._cap (an unmarked slot)
        self._base: np.uint64 | None = None
        self._cap = np.uint64(0)
        span = int(sorted_b[-1]) - int(sorted_b[0]) + 3 if sorted_b.size else 0  # + unmarked slots at both ends
        if sorted_b.size and span <= 1 << (max_bits + 1):  # (twice a hashed table: no search to pay)
            self._base = np.uint64((int(sorted_b[0]) - 1) % (1 << 64))
            self._cap = np.uint64(span - 1)
            marked = np.zeros(span, dtype=bool)
            marked[sorted_b - sorted_b[0] + 1] = True  # (the span is small: no overflow)
            if span <= 1 << BYTE_TABLE_BITS:
                self._bytes = marked.view(np.uint8)
            else:
                self._table = np.packbits(marked, bitorder="little")
                self._table = np.concatenate([self._table, np.zeros(-self._table.size % 8, np.uint8)])
                self._table = self._table.view("<u8").astype(np.uint64, copy=False)
        elif sorted_b.size and (kernel if kernel is not None else numba_loaded()):
            from engine._bloom import KeySet  # (imports Numba: see numba_loaded)

            # at least 16 filter bits a key, past max_bits if the set needs it
            self._set = KeySet(sorted_b, max(bits, min(int(sorted_b.size * 16 - 1).bit_length(), MAX_BLOOM_BITS)))
        elif sorted_b.size and sorted_b.size * 16 <= 1 << bits:
            marked = np.zeros(1 << bits, dtype=bool)
            marked[self._slots(sorted_b)] = True
            if bits <= BYTE_TABLE_BITS:
                self._bytes = marked.view(np.uint8)  # a byte a slot: one gather, no bit passes
            else:
                # slot s: bit s % 64 of word s // 64 (bytes read as little-endian words, whatever the machine)
                self._table = np.packbits(marked, bitorder="little").view("<u8").astype(np.uint64, copy=False)

    @property
    def numpy_filter(self) -> bool:
        """Whether :meth:`hits` runs NumPy's hashed filter and search (neither a direct table
        nor the kernels): several passes over every key, the costly case."""
        return self._base is None and self._set is None

    @classmethod
    def for_batch(cls, sorted_b: np.ndarray, batch: int, slots_per_key: int = 32, *,
                  kernel: bool | None = None) -> HashedKeys:
        """A table of at most ``slots_per_key`` slots a key of a ``batch``-key batch (one call:
        4 bytes a key; a stream, which reuses it for every batch, affords more)."""
        return cls(sorted_b, max_bits=min(PREFILTER_BITS, int(batch * slots_per_key - 1).bit_length()), kernel=kernel)

    @classmethod
    def for_stream(cls, sorted_b: np.ndarray, batch: int) -> HashedKeys:
        """The table a stream of ``batch``-key batches (or a scan of a whole table) reuses for
        every batch: 512 slots a key of a batch (at most 2^PREFILTER_BITS), and the kernels
        where Numba is loaded or where the set is too large for NumPy's table (over
        ``2^PREFILTER_BITS / 16`` keys: NumPy would search every key, 100-200 ns; a read that
        looks for so many keys reads enough rows to repay Numba's load)."""
        big = sorted_b.size * 16 > 1 << PREFILTER_BITS
        return cls.for_batch(sorted_b, batch, slots_per_key=512, kernel=True if big else None)

    def _slots(self, keys: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The table slot of each key (into ``out``, a uint64 array of its size, if given)."""
        unsigned = np.asarray(keys, dtype=np.int64).view(np.uint64)
        if self._base is not None:
            slot = np.subtract(unsigned, self._base, out=out)
            if self._bytes is None:  # (a byte table's gather clips instead: no pass)
                np.minimum(slot, self._cap, out=slot)
            return slot  # type: ignore[no-any-return]
        slot = np.multiply(unsigned, _FIB, out=out)
        slot >>= self._shift
        return slot  # type: ignore[no-any-return]

    def hits(self, a: np.ndarray) -> np.ndarray:
        """Ascending positions of ``a`` (any order) whose keys are in the set."""
        if a.size == 0 or self.keys.size == 0:
            return np.empty(0, dtype=np.intp)
        if self._bytes is not None:
            # every pass writes into kept scratch buffers (see engine._scratch): no fresh temporaries
            slot, flags = scratch(a.size, 2)
            self._slots(a, out=slot)
            marked = flags.view(np.uint8)[: a.size]
            np.take(self._bytes, slot.view(np.intp), out=marked, mode="clip")
            candidates = np.flatnonzero(marked.view(np.bool_))
        elif self._set is not None:
            (out,) = scratch(a.size, 1)
            n = self._set.hits(np.ascontiguousarray(a, dtype=np.int64), out.view(np.int64))
            return out[:n].astype(np.intp)  # (a copy: the scratch buffer is reused by the next call)
        elif self._table is None:
            return np.flatnonzero(_isin_searched(a, self.keys))
        else:
            candidates = self._word_hits(a)
        if not candidates.size or self._base is not None:  # (a direct table's answer is exact)
            return candidates
        return candidates[_isin_searched(a[candidates], self.keys)]  # type: ignore[no-any-return]

    def _word_hits(self, a: np.ndarray) -> np.ndarray:
        """Positions of ``a`` whose slot is marked in the bit table (candidates)."""
        assert self._table is not None
        slot, index, word = scratch(a.size, 3)
        self._slots(a, out=slot)
        np.right_shift(slot, _SIX, out=index)
        np.take(self._table, index.view(np.intp), out=word, mode="clip")  # (intp indices: no converted copy)
        np.bitwise_and(slot, _63, out=slot)
        np.right_shift(word, slot, out=word)
        np.bitwise_and(word, _ONE, out=word)
        marked = index.view(np.bool_)[: a.size]  # (the indices are spent; nonzero is 4x faster on bools)
        np.not_equal(word, _ZERO, out=marked)
        return np.flatnonzero(marked)


def unsorted_hits(a: np.ndarray, sorted_b: np.ndarray) -> np.ndarray:
    """Ascending positions of ``a`` (any order) whose keys occur in the ascending, distinct
    ``sorted_b``: a long ``a`` through a :class:`HashedKeys` built for this call.

    >>> unsorted_hits(np.array([9, 2, 7, 2]), np.array([2, 3, 9])).tolist()
    [0, 1, 3]
    """
    if a.size == 0 or sorted_b.size == 0:
        return np.empty(0, dtype=np.intp)
    hashed = _hashed_for(a, sorted_b)
    return np.flatnonzero(_isin_searched(a, sorted_b)) if hashed is None else hashed.hits(a)
