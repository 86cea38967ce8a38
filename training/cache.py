"""A bounded, crash-safe, multi-process cache of materialized rows.

An entry lives at ``<store>/_cache/<name>/`` and holds:

- ``keys.npy``: the sorted int64 keys it holds (the store's ``erase`` does not read it: it
  consults the store's cache index, :class:`modyn_store.core.caches.CacheIndex`, where each
  entry and its temporary folder are registered with their keys before a byte is written);
- ``rows.npy``: the keys in row order;
- ``c<i>.npy`` for fixed column ``i``, ``c<i>.offsets.npy`` and ``c<i>.data.npy`` for a
  variable-length one (all plain ``.npy``, never pickles, opened memory-mapped);
- ``meta.json``: column specs, row count, a random build id; written last (the files of one
  entry are opened as one build: see :func:`training._cache_files._read_entry`).

An entry is built in ``_cache/.tmp-<name>-<random>/`` under an exclusive per-name lock and
published with one ``rename``, so readers never see a partial entry and a builder killed
mid-build (even by SIGKILL: the lock dies with the process) leaves only a temporary folder that
the next builder removes. The total size is bounded by ``max_bytes``; least recently used
entries are evicted first. Stores that are not on a local disk keep entries in process memory.

Example
-------
>>> import tempfile, numpy as np
>>> from training.cache import Cache
>>> from training.columns import ColumnSpec
>>> cache = Cache(tempfile.mkdtemp(), max_bytes=1 << 20)
>>> spec = {"x": ColumnSpec("x", "fixed", "<f4", ())}
>>> def fill(alloc):
...     alloc(spec["x"], 3)[:] = [1.0, 2.0, 3.0]
...     return np.array([9, 4, 6]), {}
>>> entry = cache.get_or_build("demo", np.array([4, 6, 9]), spec, fill)
>>> entry.fixed["x"].tolist(), cache.open("demo").keys.tolist()
([1.0, 2.0, 3.0], [9, 4, 6])
"""

from __future__ import annotations

import os
import threading
import uuid
import weakref
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from engine._search import sorted_unique
from modyn_store.core.errors import InvalidArgumentError
from training.columns import ColumnSpec
from training._cache_files import (
    CacheEntry,
    DamagedEntryError,
    Filler,
    _check_rows,
    _read_entry,
    _size_of,
    _write_entry,
    remove_tree,
    stamp_of,
)
from training.errors import CacheError

__all__ = ["Cache", "CacheEntry", "DEFAULT_MAX_BYTES", "cache_for", "forget"]

DEFAULT_MAX_BYTES = 16 << 30
_TMP = ".tmp-"
_LOCKS = ".locks"

def _name_ok(name: str) -> str:
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
        raise InvalidArgumentError("name", name, "letters, digits, '-' and '_'")
    return name


def _entry_bytes(n: int, specs: dict[str, ColumnSpec]) -> int:
    return int(n * (16 + sum(s.row_nbytes() for s in specs.values())))


class Cache:
    """Entries under one folder (``root``), or in process memory when ``root`` is ``None``.

    Parameters
    ----------
    root:
        A local folder (created on demand), e.g. ``<store>/_cache``.
    max_bytes:
        Size bound; building an entry first evicts least recently used ones to fit. An entry
        larger than the bound is served from process memory only.
    """

    def __init__(self, root: str | None, *, max_bytes: int = DEFAULT_MAX_BYTES, index: Any = None) -> None:
        if not isinstance(max_bytes, (int, np.integer)) or max_bytes < 0:
            raise InvalidArgumentError("max_bytes", max_bytes, "an integer number of bytes >= 0")
        self.root = root
        # the store's CacheIndex: entries are registered there before their folders are written
        self._index = index
        self.max_bytes = int(max_bytes)
        # entries opened or built by this process, by name. A cache with a folder holds them
        # weakly: an entry (its mapped files, its rows held in memory when it is above the bound,
        # the device copies its loaders made) is released with the last loader that serves it,
        # rather than kept for the life of the process; one without a folder holds them (they
        # are the cache), bounded by max_bytes.
        self._open: MutableMapping[str, CacheEntry] = weakref.WeakValueDictionary() if root is not None else {}
        self._mutex = threading.Lock()
        self._store_ident: Any = None  # see cache_for
        self._erased_through = 0  # entries held in memory lack the keys erased up to this version

    def __repr__(self) -> str:
        return f"Cache(root={self.root!r}, max_bytes={self.max_bytes})"

    # -- locking -------------------------------------------------------------------------
    @contextmanager
    def _flock(self, lock_name: str) -> Iterator[None]:
        assert self.root is not None
        folder = os.path.join(self.root, _LOCKS)
        os.makedirs(folder, exist_ok=True)
        # an OS lock (flock / LockFileEx): released by the kernel when its holder dies
        with FileLock(os.path.join(folder, lock_name + ".lock")):
            yield

    def _lock_is_free(self, lock_name: str) -> bool:
        assert self.root is not None
        path = os.path.join(self.root, _LOCKS, lock_name + ".lock")
        if not os.path.exists(path):
            return True
        probe = FileLock(path, timeout=0)
        try:
            probe.acquire()
        except Timeout:
            return False
        probe.release()
        return True

    # -- reading -------------------------------------------------------------------------
    def open(self, name: str, specs: dict[str, ColumnSpec] | None = None) -> CacheEntry | None:
        """The entry ``name`` if it exists (and was not removed since it was opened), else None.

        An entry whose files are damaged (truncated, missing, not arrays, inconsistent with its
        metadata, metadata of another form or format, or columns other than ``specs`` when
        given) is removed and reported as absent, so that it is built again: entries are
        published whole, so a damaged one never heals."""
        _name_ok(name)
        with self._mutex:
            entry = self._open.get(name)
            if entry is not None and entry.alive() and (specs is None or entry.specs == specs):
                self._touch(entry)
                if self.root is None:  # most recently used: evicted last (_build_in_memory)
                    self._open[name] = self._open.pop(name)
                return entry
            self._open.pop(name, None)
        if self.root is None:
            return None
        path = os.path.join(self.root, name)
        try:
            entry = _read_entry(name, path)
        except FileNotFoundError:
            return None
        except DamagedEntryError as exc:
            self._discard_build(name, exc.stamp)
            return None
        if specs is not None and entry.specs != specs:
            assert entry.stamp is not None
            self._discard_build(name, entry.stamp)  # (this build only: one built since is kept)
            return None
        with self._mutex:
            self._open[name] = entry
        self._touch(entry)
        return entry

    def _touch(self, entry: CacheEntry) -> None:
        if entry.path is not None:
            try:
                os.utime(entry.path)
            except FileNotFoundError:
                pass  # removed concurrently; the next open() notices through alive()

    def entries(self) -> list[str]:
        """Names of the published entries on disk (or in memory)."""
        if self.root is None:
            return sorted(self._open)
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if not n.startswith(".") and os.path.isdir(os.path.join(self.root, n)))

    def total_bytes(self) -> int:
        """Bytes held by published entries."""
        if self.root is None:
            return sum(e.nbytes for e in self._open.values())
        return sum(_size_of(os.path.join(self.root, n)) for n in self.entries())

    def discard(self, name: str) -> None:
        """Remove an entry (on disk and in this process). Idempotent: an entry that is absent,
        or that another process removes at the same time, is no error."""
        _name_ok(name)
        with self._mutex:
            self._open.pop(name, None)
        if self.root is not None:
            with self._flock(name):
                self._remove_locked(name)

    def _remove_locked(self, name: str) -> None:
        """Remove ``name``'s folder and its record in the store's index (its lock is held)."""
        assert self.root is not None
        remove_tree(os.path.join(self.root, name))
        if self._index is not None:
            self._index.remove(name)

    def _discard_build(self, name: str, stamp: bytes) -> None:
        """Remove ``name`` if the build on disk is still the one whose ``meta.json`` is
        ``stamp`` (found damaged); a build published since by another process is kept."""
        with self._mutex:
            held = self._open.get(name)
            if held is not None and held.stamp == stamp:
                self._open.pop(name)
        assert self.root is not None
        with self._flock(name):
            if stamp_of(os.path.join(self.root, name)) == stamp:
                self._remove_locked(name)

    # -- building ------------------------------------------------------------------------
    def get_or_build(
        self, name: str, keys: np.ndarray, specs: dict[str, ColumnSpec], fill: Filler, *, stage: bool = False
    ) -> CacheEntry:
        """Open ``name``, or build it with ``fill`` (see :data:`Filler`) for the key set ``keys``.

        Concurrent callers (threads or processes) for the same name build it once; the others
        wait and open the published entry. With ``stage``, fixed columns are filled in process
        memory and written to their files in one sequential write each (faster than filling a
        fresh file mapping page by page); the buffers ``fill`` got stay valid either way.
        """
        entry = self.open(name, specs)
        if entry is not None:
            return entry
        built = self.build(name, keys, specs, fill, stage=stage)
        if built is not None:
            return built
        return self.opened(name)

    def opened(self, name: str) -> CacheEntry:
        """Open ``name`` right after :meth:`build`; raises :class:`CacheError` if it is gone."""
        entry = self.open(name)
        if entry is None:
            raise CacheError(f"cache entry {name!r} disappeared right after it was built (erased or evicted)")
        return entry

    def build(
        self, name: str, keys: np.ndarray, specs: dict[str, ColumnSpec], fill: Filler, *, stage: bool = False
    ) -> CacheEntry | None:
        """Build and publish ``name`` unless it is published (see :meth:`get_or_build`).

        Returns the entry when it is held in process memory; ``None`` when it is on disk (open
        it with :meth:`opened`). Reads no ``.npy`` header, so it may run in a background thread
        (parsing headers compiles Python literals, which CPython 3.11 does not support in two
        threads at once).
        """
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        size = _entry_bytes(keys.size, specs)
        if self.root is None or size > self.max_bytes:
            with self._mutex:
                entry = self._open.get(name)
            return entry if entry is not None else self._build_in_memory(name, keys, specs, fill)
        os.makedirs(self.root, exist_ok=True)
        with self._flock(name):
            if os.path.exists(os.path.join(self.root, name, "meta.json")):
                return None
            # entries are published whole, meta.json included: a folder without it is what a
            # removal (eviction, erasure, discard) killed half-way left, and would block the rename
            remove_tree(os.path.join(self.root, name))
            self._remove_stale_tmp(name)
            self._evict(size, keep=name)
            tmp_name = f"{_TMP}{name}-{uuid.uuid4().hex[:12]}"
            tmp = os.path.join(self.root, tmp_name)
            if self._index is not None:
                # before any byte is written: an erasure finds the folders even if we are killed
                self._index.register(name, keys, folders=[name, tmp_name])
            os.makedirs(tmp)
            try:
                _write_entry(tmp, keys, specs, fill, stage)
                os.rename(tmp, os.path.join(self.root, name))
            except BaseException:
                remove_tree(tmp)
                if self._index is not None:
                    self._index.remove(name)
                raise
        return None

    def _build_in_memory(self, name: str, keys: np.ndarray, specs: dict[str, ColumnSpec], fill: Filler) -> CacheEntry:
        fixed: dict[str, np.ndarray] = {}

        def alloc(spec: ColumnSpec, n: int) -> np.ndarray:
            arr = np.empty((n, *spec.shape), dtype=np.dtype(spec.dtype))
            fixed[spec.name] = arr
            return arr

        rows, var = fill(alloc)
        _check_rows(rows, keys)
        entry = CacheEntry(name, np.ascontiguousarray(rows, dtype=np.int64), dict(specs), fixed, var)
        with self._mutex:
            if self.root is None:
                # least recently used first (open() moves an entry it returns to the end); a
                # loader serving an evicted entry keeps its own reference
                held = [n for n in self._open if n != name]
                total = sum(self._open[n].nbytes for n in held)
                for old in held:
                    if total <= self.max_bytes - entry.nbytes:
                        break
                    total -= self._open.pop(old).nbytes
                self._open.pop(name, None)
            # (with a folder: an entry above the bound, held while a loader serves it)
            self._open[name] = entry
        return entry

    def _remove_stale_tmp(self, name: str) -> None:
        """Temporary folders of ``name`` left by a killed builder (we hold ``name``'s lock)."""
        assert self.root is not None
        for n in os.listdir(self.root):
            if n.startswith(f"{_TMP}{name}-"):
                remove_tree(os.path.join(self.root, n))

    def _evict(self, needed: int, *, keep: str) -> None:
        assert self.root is not None
        with self._flock("_evict"):
            for n in os.listdir(self.root):  # temporary folders of dead builders
                if n.startswith(_TMP):
                    owner = n[len(_TMP) :].rsplit("-", 1)[0]
                    if owner != keep and self._lock_is_free(owner):
                        remove_tree(os.path.join(self.root, n))
            sized = []
            for n in self.entries():
                p = os.path.join(self.root, n)
                try:
                    sized.append((os.stat(p).st_mtime, n, _size_of(p)))
                except FileNotFoundError:
                    continue
            total = sum(s for _, _, s in sized)
            for _, n, s in sorted(sized):
                if total + needed <= self.max_bytes:
                    break
                if n == keep or not self._remove_unless_locked(n):
                    continue  # (being built or removed by another process: left to it)
                with self._mutex:
                    self._open.pop(n, None)
                total -= s

    def _remove_unless_locked(self, name: str) -> bool:
        """Remove ``name`` under its lock if no other process holds that lock; whether it did.
        Without the lock, a build of ``name`` starting between the folder's removal and the
        record's could lose its record in the store's index, which erasure reads."""
        assert self.root is not None
        lock = FileLock(os.path.join(self.root, _LOCKS, name + ".lock"), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            return False
        try:
            self._remove_locked(name)
        finally:
            lock.release()
        return True


_CACHES: dict[tuple[str, int], Cache] = {}
_CACHES_LOCK = threading.Lock()


def cache_for(store: Any, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Cache:
    """The process-wide :class:`Cache` of ``store`` (``_cache/`` in its folder when local)."""
    fs = store.fs
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    root = store.path("_cache") if "file" in protocols or "local" in protocols else None
    key = (root or f"memory:{store.uri}", int(max_bytes))
    ident = _store_identity(store)
    with _CACHES_LOCK:
        cache = _CACHES.get(key)
        if cache is None:
            cache = Cache(root, max_bytes=max_bytes, index=store.caches if root is not None else None)
            _CACHES[key] = cache
    with cache._mutex:
        if cache._store_ident != ident:
            # another store now lives at this location (deleted and created again): entries
            # held in process memory hold the old store's rows, whatever their names say
            cache._open.clear()
            cache._store_ident = ident
            cache._erased_through = -1  # the version now, read below
        since = cache._erased_through
        held = any(e.path is None for e in cache._open.values())
    # the log is read only where entries are held in memory (the store's erase removes those on
    # disk) or to start the count: no read per loader otherwise
    if since < 0 or held:
        latest = store.version
        if held and 0 <= since < latest:
            _drop_erased(cache, store, since, latest)
        with cache._mutex:
            cache._erased_through = max(cache._erased_through, latest)
    return cache


def _drop_erased(cache: Cache, store: Any, since: int, latest: int) -> None:
    """Drop the entries held in process memory that hold a key erased after version ``since``
    (up to ``latest``): the store's ``erase`` removes the entries on disk, not these, which
    would otherwise keep the erased rows for as long as the process runs. Entries built in
    between were built from live rows (a build that overlapped an erase discards itself)."""
    erased = store.read_table("erasures", latest, filter=f"_version > {since}")
    if erased is None or erased.num_rows == 0:
        return
    forget(store, erased.column("key").to_numpy())


def _store_identity(store: Any) -> Any:
    """What tells one store from another created later at the same location: the identity of
    its marker file (inode and creation time on a local disk, the object's tag elsewhere)."""
    from modyn_store.core._marker import MARKER, identity

    return identity(store.fs, store.path(MARKER))


def forget(store: Any, keys: np.ndarray) -> int:
    """Drop every in-process entry of ``store`` holding one of ``keys``; returns how many.

    On-disk entries are removed by the store's ``erase``; open entries notice it on their next
    use. This also covers stores held in memory.
    """
    keys = sorted_unique(np.asarray(keys, dtype=np.int64))
    dropped = 0
    with _CACHES_LOCK:
        caches = [c for (r, _), c in _CACHES.items() if r in (store.path("_cache"), f"memory:{store.uri}")]
    for cache in caches:
        with cache._mutex:
            for name, entry in list(cache._open.items()):
                if np.isin(keys, entry.keys).any():
                    cache._open.pop(name)
                    dropped += 1
    return dropped
