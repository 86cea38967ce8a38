"""What the process keeps between reads of its stores: one Lance session, and values computed
from a Lance table's content, keyed by the table's manifest.

A read of a version needs a few sets derived from small tables (the keys tombstoned at or
before it, the keys erased): reading and sorting them again on every fresh open of the store
costs more than the rest of a read of 10^6 keys. They are kept here, keyed by the table's URI
and its serialized manifest. A manifest lists every data file (uniquely named, never rewritten)
and deletion file of its version, so equal bytes mean equal content: a commit by any writer,
a compaction, an erasure or a table made again at the same path gives other bytes and a miss,
never a stale hit. Entries are evicted oldest-used first beyond :data:`MAX_BYTES`.

Example
-------
>>> import tempfile, lance, numpy as np, pyarrow as pa
>>> ds = lance.write_dataset(pa.table({"key": [3, 1, 2]}), tempfile.mkdtemp() + "/t.lance")
>>> read = lambda d: np.sort(d.to_table().column("key").to_numpy())
>>> DERIVED.get(ds, "sorted keys", read).tolist(), DERIVED.get(ds, "sorted keys", read) is DERIVED.get(ds, "sorted keys", read)
([1, 2, 3], True)
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import lance
import numpy as np

__all__ = ["DERIVED", "MAX_BYTES", "Derived", "identity", "session"]

#: the most bytes of arrays the process keeps
MAX_BYTES = 256 << 20
#: bounds of the process's Lance caches (file metadata, manifests, index pages), shared by every
#: table of every store the process opens
METADATA_CACHE_BYTES = 256 << 20
INDEX_CACHE_BYTES = 256 << 20
_SESSION: tuple[int, lance.Session] | None = None
T = TypeVar("T")


def session() -> lance.Session:
    """The Lance session every dataset of this process is opened with.

    Lance keeps file footers, column metadata, deletion vectors and manifests in a session's
    caches. A dataset opened without a session gets an empty one, so each fresh open of a
    table read every file's metadata again (about a third of a fresh 10^6-key read); with one
    session a second open of the same table reads only what changed. Lance still finds the
    latest manifest on every open, and a commit, a rewritten file or a table made again at the
    same path is read afresh (``tests/store/test_read_caches.py`` holds it to that). A forked
    child makes its own session.
    """
    global _SESSION
    held = _SESSION
    pid = os.getpid()
    if held is None or held[0] != pid:
        made = lance.Session(metadata_cache_size_bytes=METADATA_CACHE_BYTES, index_cache_size_bytes=INDEX_CACHE_BYTES)
        held = (pid, made)
        _SESSION = held
    return held[1]


def identity(ds: Any) -> tuple[str, bytes] | None:
    """What names the content of ``ds`` exactly: its URI and serialized manifest (``None`` where
    this pylance cannot serialize a manifest: then nothing is kept)."""
    serialize = getattr(getattr(ds, "_ds", None), "serialized_manifest", None)
    if serialize is None:
        return None
    return str(ds.uri), bytes(serialize())


def _size(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, tuple):
        return sum(_size(v) for v in value)
    return 64


class Derived:
    """A bounded map ``(table content, what) -> value`` (thread-safe; values are shared, so
    callers never modify them: arrays are stored read-only)."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, ds: Any, what: Hashable, compute: Callable[[Any], T], *, also: Hashable = None) -> T:
        """``compute(ds)``, or the value kept for the same content of ``ds`` and ``what``.

        ``also`` adds to the key whatever else the value depends on (e.g. another table's
        :func:`identity`)."""
        ident = identity(ds)
        if ident is None:
            return compute(ds)
        key = (ident, what, also)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return hit[0]  # type: ignore[no-any-return]
            self.misses += 1
        value = compute(ds)
        self.put(key, value)
        return value

    def peek(self, key: Hashable) -> Any:
        """The value kept under ``key`` by :meth:`put` (``None`` if none)."""
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return hit[0]

    def put(self, key: Hashable, value: Any, *, replace: bool = False) -> None:
        """Keep ``value`` under ``key`` (a key that names the content it was derived from;
        ``replace``: also where a value is kept under it)."""
        _freeze(value)
        size = _size(value)
        with self._lock:
            if replace and key in self._items:
                self._bytes -= self._items.pop(key)[1]
            if size <= self.max_bytes and key not in self._items:
                self._items[key] = (value, size)
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, (_, dropped) = self._items.popitem(last=False)
                    self._bytes -= dropped

    def discard(self, key: Hashable) -> None:
        """Forget the value kept under ``key`` (if any): for one whose content no reader of the
        process will ask for again."""
        with self._lock:
            hit = self._items.pop(key, None)
            if hit is not None:
                self._bytes -= hit[1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


def _freeze(value: Any) -> None:
    if isinstance(value, np.ndarray):
        value.setflags(write=False)
    elif isinstance(value, tuple):
        for v in value:
            _freeze(v)


#: the process's map
DERIVED = Derived()
