"""Kernels that find keys of a batch in a set of int64 keys spread over too many values for a
direct table (:class:`engine._search.HashedKeys`): a blocked Bloom filter in front of an
open-addressing hash set, both read by one kernel call a batch (the filter over every key,
then the hash set for the keys that passed).

Each key is hashed once for the filter (multiplied by the 64-bit golden ratio): the top bits
of the product pick one 64-bit word, the next two 6-bit fields two bits in it, and both bits are
set for each key of the set. A key is looked for by reading that one word (the filter is sized
to stay in a core's cache up to 1 MiB); only where both bits are set is it looked up in the
hash set (another multiplier, linear probing, at most 3/4 full), whose answer is exact. With
64 filter bits a key about 0.1% of the keys not in the set pass the filter, with 16 bits 1.4%.

A probe of the hash set costs about one cache miss; a binary search of the sorted keys, which
sets of over :data:`HASH_SET_MAX` keys take instead (their hash set would take gigabytes),
costs one a level.

Example
-------
>>> import numpy as np
>>> keys = np.array([-7, 3, 2**62], dtype=np.int64)
>>> s = KeySet(keys, filter_bits=8)
>>> out = np.empty(4, np.int64)
>>> n = s.hits(np.array([3, 4, -7, 3], dtype=np.int64), out)
>>> out[:n].tolist()
[0, 2, 3]
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["HASH_SET_MAX", "KeySet"]

_FIB = np.uint64(0x9E3779B97F4A7C15)  # the filter's multiplier (64-bit golden ratio)
_MIX = np.uint64(0xD6E8FEB86659FD93)  # the hash set's (another odd constant: other collisions)
_SIX = np.uint64(6)
_TWELVE = np.uint64(12)
_63 = np.uint64(63)
_ONE = np.uint64(1)
#: the hash set's empty slot; whether the key itself is in the set is kept beside it
_EMPTY = np.iinfo(np.int64).min
#: the most keys a set holds in a hash set (256 MiB of slots at most); larger sets search the
#: keys that pass the filter in the sorted keys
HASH_SET_MAX = 1 << 24


@njit(cache=True, inline="always")
def _mask(h, shift):  # type: ignore[no-untyped-def]
    """The two bits of filter hash ``h`` within its word (the 12 bits below the word index)."""
    return (_ONE << ((h >> (shift - _SIX)) & _63)) | (_ONE << ((h >> (shift - _TWELVE)) & _63))


@njit(cache=True)
def _build(keys, words, shift, slots, tshift):  # type: ignore[no-untyped-def]
    """Set the filter bits of the distinct ``keys`` in ``words`` and insert them in ``slots``
    (filled with ``_EMPTY``, at least 4/3 as many slots as keys, or empty: no hash set;
    ``_EMPTY`` itself is skipped)."""
    last = slots.size - 1
    for i in range(keys.size):
        k = keys[i]
        h = np.uint64(k) * _FIB
        words[h >> shift] |= _mask(h, shift)
        if k == _EMPTY or slots.size == 0:
            continue
        j = np.int64((np.uint64(k) * _MIX) >> tshift)
        while slots[j] != _EMPTY:
            j = (j + 1) & last
        slots[j] = k


@njit(cache=True)
def _hits(a, words, shift, slots, tshift, has_empty, sorted_keys, out):  # type: ignore[no-untyped-def]
    """Write the ascending positions of ``a`` whose keys are in the set to ``out``; return how
    many. Without a hash set (``slots`` empty) a key that passed the filter is searched in
    ``sorted_keys``."""
    n = 0
    for i in range(a.size):  # the filter: every position is written, a passing one kept
        h = np.uint64(a[i]) * _FIB
        bits = _mask(h, shift)
        out[n] = i  # (n <= i: never past a.size)
        n += (words[h >> shift] & bits) == bits
    m = 0
    last = slots.size - 1
    for c in range(n):  # the exact answer, for the few keys that passed
        i = out[c]
        k = a[i]
        if slots.size == 0:
            at = np.searchsorted(sorted_keys, k)
            found = at < sorted_keys.size and sorted_keys[at] == k
        elif k == _EMPTY:
            found = has_empty
        else:
            j = np.int64((np.uint64(k) * _MIX) >> tshift)
            while slots[j] != k and slots[j] != _EMPTY:
                j = (j + 1) & last
            found = slots[j] == k
        if found:
            out[m] = i
            m += 1
    return m


class KeySet:
    """The ascending, distinct int64 ``sorted_keys``, ready for :meth:`hits` on batches of any keys.

    ``filter_bits``: log2 of the filter's bits (at least 7). Memory: the filter, plus 8 bytes a
    slot of the hash set (between 4/3 and 8/3 slots a key); a set of over
    :data:`HASH_SET_MAX` keys keeps no hash set (it would take gigabytes) and searches the keys
    that pass the filter in ``sorted_keys`` instead (kept by reference: not to be changed).
    """

    def __init__(self, sorted_keys: np.ndarray, filter_bits: int) -> None:
        keys = np.ascontiguousarray(sorted_keys, dtype=np.int64)
        self._keys = keys
        self.filter_bits = max(int(filter_bits), 7)
        self._words = np.zeros(1 << (self.filter_bits - 6), np.uint64)
        self._shift = np.uint64(64 - (self.filter_bits - 6))
        if keys.size > HASH_SET_MAX:
            self._slots = np.empty(0, np.int64)
            self._tshift = np.uint64(63)
        else:
            tbits = max(int((keys.size * 4 + 2) // 3).bit_length(), 1)
            self._slots = np.full(1 << tbits, _EMPTY, np.int64)
            self._tshift = np.uint64(64 - tbits)
        self._has_empty = bool(keys.size and keys[0] == _EMPTY)
        _build(keys, self._words, self._shift, self._slots, self._tshift)

    @property
    def nbytes(self) -> int:
        """The bytes of the filter and the hash set."""
        return int(self._words.nbytes + self._slots.nbytes)

    def hits(self, a: np.ndarray, out: np.ndarray) -> int:
        """Write the ascending positions of ``a`` (int64) whose keys are in the set to ``out``
        (int64, at least ``a.size`` long); return how many."""
        return int(_hits(a, self._words, self._shift, self._slots, self._tshift, self._has_empty, self._keys, out))
