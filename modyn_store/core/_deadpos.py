"""The positions of a stream's dead rows, kept between reads of the same version.

A stream of a snapshot (:func:`~modyn_store.core._stream.live_stream`) drops the dead keys
of each scanned batch. Where the batches are in no key order and the dead keys span too wide a
range for a direct table (keys spread over the int64 range: hashed user or document ids), and
Numba is not loaded, NumPy's hashed filter finds them in several passes over every key, about
as long again as the scan itself. What it finds is a function of three things only:

* the table's content, named by the bytes of the manifest the stream's readers were made from
  (it lists every data and deletion file; none is ever rewritten);
* the version, which decides which fragments are read, in which order, and which rows of a
  fragment that straddles it are masked;
* the set of keys to drop (tombstoned at or before the version, erased, or purged), named by
  a BLAKE2b digest of its sorted keys.

A stream without a user filter that used that filter therefore keeps what it dropped: the
ascending offsets of the dropped rows in the stream of all its readers' rows, and the number
of rows it read. They are kept in the process and, for a store on a local disk, in the read
cache (:mod:`~modyn_store.core._kept`, an entry per triple, digest-checked). A later stream of
the same triple takes each batch's drops from them, after checking that every key it drops is
in the dead set (a sort of the ~1% of the batch it drops and a search), so a kept entry can never
drop a live row. A batch past the kept rows, an entry whose keys fail the check (dropped for the
rest of the stream and from the process), a stream that resumes on fresh files, and a dead set
that changes mid-stream (an erase) filter as before.

>>> import numpy as np
>>> kept = KeptDrops(np.array([1, 5, 6]), 8)
>>> kept.drops(np.array([9, 4, 7, 2]), 0, np.array([4, 7, 20])).tolist()  # rows 0-3: row 1
[1]
>>> kept.drops(np.array([8, 3, 4, 9]), 4, np.array([3, 4, 20])).tolist()  # rows 4-7: 5 and 6
[1, 2]
>>> kept.drops(np.array([8, 3, 4, 9]), 4, np.array([4, 20])) is None  # key 3 is not dead
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from modyn_store.core import _kept
from modyn_store.core._derived import DERIVED

__all__ = ["Drops", "KeptDrops", "dead_digest", "find", "keep"]

#: the name of the entries (``_kept``'s ``what``) before the version and the dead set's digest
_ENTRY = "stream drops/1"


def dead_digest(dead: np.ndarray) -> str:
    """A digest naming the sorted, distinct int64 keys ``dead``.

    >>> dead_digest(np.array([1, 2])) == dead_digest(np.array([1, 2])) != dead_digest(np.array([1, 3]))
    True
    """
    return hashlib.blake2b(np.ascontiguousarray(dead, dtype="<i8").tobytes(), digest_size=16).hexdigest()


class KeptDrops:
    """The ascending row offsets ``offsets`` a stream of ``rows`` rows dropped, served back
    batch by batch (batches in the stream's order, each from its first row's offset)."""

    def __init__(self, offsets: np.ndarray, rows: int) -> None:
        self.offsets = offsets
        self.rows = int(rows)

    @classmethod
    def parsed(cls, arrays: tuple[np.ndarray, ...]) -> KeptDrops | None:
        """The entry read back (``(offsets, [rows])``), or ``None`` if it is malformed."""
        if len(arrays) != 2 or arrays[1].size != 1:
            return None
        offsets, rows = arrays[0], int(arrays[1][0])
        if offsets.size and (offsets[0] < 0 or offsets[-1] >= rows or not bool(np.all(offsets[1:] > offsets[:-1]))):
            return None
        return cls(offsets, rows)

    def drops(self, keys: np.ndarray, start: int, dead: np.ndarray) -> np.ndarray | None:
        """Ascending positions in ``keys`` (the batch of rows ``start ..``) to drop, or ``None``
        where this entry cannot answer: the batch reaches past its rows, or a key at a kept
        position is not in the sorted ``dead`` (the entry is then not used again)."""
        end = start + keys.size
        if end > self.rows or start < 0:
            return None
        lo, hi = np.searchsorted(self.offsets, [start, end])
        at = self.offsets[lo:hi] - start
        if at.size:
            got = np.sort(keys[at])
            where = np.searchsorted(dead, got)
            if where[-1] >= dead.size or not np.array_equal(dead[where], got):
                self.rows = -1  # never again
                return None
        return at  # type: ignore[no-any-return]


class Drops:
    """What one stream of ``version`` drops for the keys ``dead``: taken from a kept entry where
    one exists, else noted batch by batch and kept at the stream's end (:meth:`finish`) if it
    used NumPy's filter. ``source`` names the table's content the stream reads (``(folder,
    manifest bytes)``, ``None`` where nothing is kept); it is asked once, at the first batch
    that would take NumPy's filter (a stream that never does reads no manifest)."""

    def __init__(self, source: Callable[[], tuple[str, bytes] | None], version: int, dead: np.ndarray) -> None:
        self._source = source
        self._named: tuple[str, bytes] | None = None
        self._version = version
        self._dead = dead
        # the drops of every batch so far (all of them: a later stream with other batch bounds may
        # take the entry for rows this one did not filter); None past what an entry can hold
        self._parts: list[np.ndarray] | None = []
        self._noted = 0
        self.rows = 0  # rows of the batches noted so far
        self._entry: KeptDrops | None = None
        self._looked = False
        self._found = False  # an entry was found (nothing new to keep)
        self._changed = False  # the dead set changed mid-stream (an erase): nothing is kept
        self._what = ""  # the entry's name (the dead set's digest: made once, when first needed)

    def take(self, keys: np.ndarray, dead: np.ndarray, costly: bool) -> np.ndarray | None:
        """The kept drops of the next batch ``keys`` (checked against ``dead``, the keys the
        stream drops now), or ``None``: no entry, a cheap batch (``costly`` false: NumPy's filter
        would not run), or one the entry cannot answer."""
        if dead is not self._dead:
            self._changed, self._entry = True, None
        if not costly or self._changed:
            return None
        if not self._looked:
            self._looked, self._named = True, self._source()
            if self._named is None:
                return None
            self._what = _name(self._version, dead)
            self._entry = _find(*self._named, self._what)
            self._found = self._entry is not None
        if self._named is None or self._entry is None:
            return None
        got = self._entry.drops(keys, self.rows, dead)
        if got is None and self._entry.rows < 0:  # a key it drops is not dead: not used again
            DERIVED.discard(("kept", *self._named, self._what))
            self._entry = None
        return got

    def add(self, drop: np.ndarray, n: int) -> None:
        """Note the next batch's drops ``drop`` (ascending positions in its ``n`` rows)."""
        if drop.size and self._parts is not None:
            self._parts.append(drop.astype(np.int64) + self.rows)
            self._noted += drop.size
            if self._noted * 8 > _kept.MAX_ENTRY_BYTES:
                self._parts = None  # (more than the read cache keeps: nothing is kept)
        self.rows += n

    def finish(self, dead: np.ndarray) -> None:
        """The stream ended, dropping ``dead`` last: keep what it noted where a batch would have
        taken NumPy's filter (the source was asked) and no entry was found."""
        if self._named is None or self._parts is None or self._found or self._changed or dead is not self._dead:
            return
        offsets = np.concatenate(self._parts) if self._parts else np.empty(0, np.int64)
        _keep(*self._named, self._what, (offsets, np.array([self.rows], np.int64)))


def _name(version: int, dead: np.ndarray) -> str:
    return f"{_ENTRY}/{int(version)}/{dead_digest(dead)}"


def find(table_dir: str, manifest: bytes, version: int, dead: np.ndarray) -> KeptDrops | None:
    """The drops a stream of ``version`` over the table's content ``manifest`` kept for the
    keys ``dead``, from the process or the read cache, or ``None``."""
    return _find(table_dir, manifest, _name(version, dead))


def _find(table_dir: str, manifest: bytes, what: str) -> KeptDrops | None:
    memo = ("kept", table_dir, manifest, what)
    got = DERIVED.peek(memo)
    if got is None:
        got = _kept.load(table_dir, manifest, what)
        if got is None:
            return None
        DERIVED.put(memo, got)
    found = KeptDrops.parsed(got)
    if found is None:
        DERIVED.discard(memo)
    return found


def keep(table_dir: str, manifest: bytes, version: int, dead: np.ndarray, value: tuple[np.ndarray, np.ndarray]) -> None:
    """Keep the ``(offsets, [rows])`` a stream of ``version`` over ``manifest`` dropped for ``dead``."""
    _keep(table_dir, manifest, _name(version, dead), value)


def _keep(table_dir: str, manifest: bytes, what: str, value: tuple[np.ndarray, np.ndarray]) -> None:
    _kept.save(table_dir, manifest, what, value)
    DERIVED.put(("kept", table_dir, manifest, what), value, replace=True)
