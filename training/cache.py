"""A bounded, crash-safe, multi-process cache of materialized rows.

An entry lives at ``<store>/_cache/<name>/`` and holds:

- ``keys.npy``: the sorted int64 keys it holds (the store's ``erase`` does not read it: it
  consults the store's cache index, :class:`modyn_store.core.caches.CacheIndex`, where each
  entry and its temporary folder are registered with their keys before a byte is written);
- ``rows.npy``: the keys in row order;
- ``c<i>.npy`` for fixed column ``i``, ``c<i>.offsets.npy`` and ``c<i>.data.npy`` for a
  variable-length one (all plain ``.npy``, never pickles, opened memory-mapped);
- ``meta.json``: column specs, row count, byte size; written last.

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

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from modyn_store.core._keyscan import increasing
from modyn_store.core.errors import InvalidArgumentError
from training.columns import ColumnSpec, VarColumn
from training.errors import CacheError

__all__ = ["Cache", "CacheEntry", "DEFAULT_MAX_BYTES", "cache_for", "forget"]

DEFAULT_MAX_BYTES = 16 << 30
FORMAT = 1
_TMP = ".tmp-"
_LOCKS = ".locks"

#: ``fill(alloc) -> (row_keys, var_columns)``: fills the fixed buffers from ``alloc(spec, rows)``
#: and returns the key of every row (in row order) and the variable-length columns.
Filler = Callable[[Callable[[ColumnSpec, int], np.ndarray]], tuple[np.ndarray, dict[str, VarColumn]]]


@dataclass
class CacheEntry:
    """An opened entry: ``keys[i]`` is the key of row ``i``; fixed columns memory-mapped."""

    name: str
    keys: np.ndarray
    specs: dict[str, ColumnSpec]
    fixed: dict[str, np.ndarray]
    var: dict[str, VarColumn]
    path: str | None = None
    _ident: tuple[int, int] | None = field(default=None, repr=False)
    device_copies: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def nbytes(self) -> int:
        return int(
            self.keys.nbytes + sum(a.nbytes for a in self.fixed.values()) + sum(v.nbytes for v in self.var.values())
        )

    def alive(self) -> bool:
        """False once the entry was removed from disk (by an erasure or eviction)."""
        if self.path is None:
            return True
        try:
            st = os.stat(os.path.join(self.path, "keys.npy"))
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == self._ident


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
        self._open: dict[str, CacheEntry] = {}
        self._mutex = threading.Lock()
        self._store_ident: Any = None  # see cache_for

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
                return entry
            self._open.pop(name, None)
        if self.root is None:
            return None
        path = os.path.join(self.root, name)
        try:
            entry = _read_entry(name, path)
            if specs is not None and entry.specs != specs:
                raise CacheError(f"cache entry {path!r} holds columns {sorted(entry.specs)}, not {sorted(specs)}")
        except FileNotFoundError:
            return None
        except CacheError:
            self.discard(name)
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
        """Remove an entry (on disk and in this process)."""
        _name_ok(name)
        with self._mutex:
            self._open.pop(name, None)
        if self.root is not None:
            with self._flock(name):
                path = os.path.join(self.root, name)
                if os.path.isdir(path):
                    shutil.rmtree(path)
                if self._index is not None:
                    self._index.remove(name)

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
                shutil.rmtree(tmp, ignore_errors=True)
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
                budget = self.max_bytes - entry.nbytes
                for old in list(self._open):
                    if sum(e.nbytes for e in self._open.values()) <= budget:
                        break
                    self._open.pop(old)
            self._open[name] = entry
        return entry

    def _remove_stale_tmp(self, name: str) -> None:
        """Temporary folders of ``name`` left by a killed builder (we hold ``name``'s lock)."""
        assert self.root is not None
        for n in os.listdir(self.root):
            if n.startswith(f"{_TMP}{name}-"):
                shutil.rmtree(os.path.join(self.root, n), ignore_errors=True)

    def _evict(self, needed: int, *, keep: str) -> None:
        assert self.root is not None
        with self._flock("_evict"):
            for n in os.listdir(self.root):  # temporary folders of dead builders
                if n.startswith(_TMP):
                    owner = n[len(_TMP) :].rsplit("-", 1)[0]
                    if owner != keep and self._lock_is_free(owner):
                        shutil.rmtree(os.path.join(self.root, n), ignore_errors=True)
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
                if n == keep:
                    continue
                shutil.rmtree(os.path.join(self.root, n), ignore_errors=True)
                if self._index is not None:
                    self._index.remove(n)
                with self._mutex:
                    self._open.pop(n, None)
                total -= s


def _size_of(path: str) -> int:
    total = 0
    try:
        for f in os.scandir(path):
            if f.is_file():
                total += f.stat().st_size
    except FileNotFoundError:
        return 0
    return total


def _sorted(a: np.ndarray) -> np.ndarray:
    return a if increasing(a) else np.sort(a)


def _check_rows(rows: np.ndarray, keys: np.ndarray) -> None:
    if rows.shape != keys.shape or not np.array_equal(_sorted(rows), _sorted(keys)):
        raise CacheError("a cache entry's rows do not hold exactly the requested keys")


def _write_entry(tmp: str, keys: np.ndarray, specs: dict[str, ColumnSpec], fill: Filler, stage: bool) -> None:
    # keys.npy first: an erasure running during the build finds and removes the folder
    np.save(os.path.join(tmp, "keys.npy"), _sorted(keys), allow_pickle=False)
    names = list(specs)
    index = {n: i for i, n in enumerate(names)}
    maps: list[np.ndarray] = []
    staged: dict[str, np.ndarray] = {}

    def alloc(spec: ColumnSpec, n: int) -> np.ndarray:
        shape = (n, *spec.shape)
        if stage:
            arr = staged[spec.name] = np.empty(shape, dtype=np.dtype(spec.dtype))
            return arr
        path = os.path.join(tmp, f"c{index[spec.name]}.npy")
        arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(spec.dtype), shape=shape)
        maps.append(arr)
        return arr

    rows, var = fill(alloc)
    _check_rows(rows, keys)
    for name, arr in staged.items():
        np.save(os.path.join(tmp, f"c{index[name]}.npy"), arr, allow_pickle=False)
    np.save(os.path.join(tmp, "rows.npy"), np.ascontiguousarray(rows, dtype=np.int64), allow_pickle=False)
    # no msync: the rows are in the shared page cache, visible to every process once the
    # folder is renamed; the cache is rebuilt if a machine crash ever loses them
    del maps[:]
    for name, col in var.items():
        i = index[name]
        np.save(os.path.join(tmp, f"c{i}.offsets.npy"), col.offsets, allow_pickle=False)
        np.save(os.path.join(tmp, f"c{i}.data.npy"), col.data, allow_pickle=False)
    meta = {
        "format": FORMAT,
        "rows": int(keys.size),
        "columns": [specs[n].to_json() for n in names],
        "created": time.time(),
    }
    with open(os.path.join(tmp, "meta.json"), "w") as fh:
        json.dump(meta, fh)


def _load(path: str) -> np.ndarray:
    # copy-on-write mapping: pages are shared with the page cache, and the arrays are writable
    # views (so torch.from_numpy accepts them) whose writes never reach the file
    try:
        return np.load(path, mmap_mode="c", allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError) as exc:  # truncated, or not an .npy file any more
        raise CacheError(f"cache file {path!r} is damaged: {exc}") from exc


def _read_entry(name: str, path: str) -> CacheEntry:
    """The published entry at ``path``: ``FileNotFoundError`` when it is not there (no
    ``meta.json``), :class:`CacheError` when anything of it is missing or not what its metadata
    says (a file gone, another dtype or shape, metadata of another form)."""
    try:
        with open(os.path.join(path, "meta.json")) as fh:
            meta = json.load(fh)
    except FileNotFoundError:
        raise
    except (OSError, json.JSONDecodeError) as exc:
        raise CacheError(f"cache entry {path!r} is unreadable: {exc}") from exc
    try:
        return _entry_of(name, path, meta)
    except CacheError:
        raise
    except FileNotFoundError as exc:  # published whole: a file missing is damage, not absence
        raise CacheError(f"cache entry {path!r} lost a file: {exc}") from exc
    except (OSError, KeyError, TypeError, ValueError, AttributeError, InvalidArgumentError) as exc:
        raise CacheError(f"cache entry {path!r} has unreadable metadata: {type(exc).__name__}: {exc}") from exc


def _entry_of(name: str, path: str, meta: Any) -> CacheEntry:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CacheError(f"cache entry {path!r} has format {got!r}, expected {FORMAT}")
    st = os.stat(os.path.join(path, "keys.npy"))
    rows = int(meta["rows"])
    keys = _load(os.path.join(path, "rows.npy"))
    specs = {d["name"]: ColumnSpec.from_json(d) for d in meta["columns"]}
    fixed: dict[str, np.ndarray] = {}
    var: dict[str, VarColumn] = {}
    for i, (n, spec) in enumerate(specs.items()):
        if spec.kind == "fixed":
            arr = _load(os.path.join(path, f"c{i}.npy"))
            if arr.shape != (rows, *spec.shape) or arr.dtype != np.dtype(spec.dtype):
                raise CacheError(f"cache entry {path!r}: column {n!r} has shape {arr.shape}, dtype {arr.dtype}")
            fixed[n] = arr
        else:
            off = _load(os.path.join(path, f"c{i}.offsets.npy"))
            data = _load(os.path.join(path, f"c{i}.data.npy"))
            if off.dtype != np.int64 or data.dtype != np.uint8 or data.ndim != 1:
                raise CacheError(f"cache entry {path!r}: column {n!r} has offsets of {off.dtype} and data of "
                                 f"{data.dtype} (expected int64 and uint8)")
            if off.shape != (rows + 1,) or (rows and (int(off[0]) != 0 or int(off[-1]) != data.size)) or \
                    bool((off[1:] < off[:-1]).any()):
                raise CacheError(f"cache entry {path!r}: column {n!r} has inconsistent offsets")
            var[n] = VarColumn(off, data)
    if keys.shape != (rows,) or keys.dtype != np.int64:
        raise CacheError(f"cache entry {path!r}: rows.npy holds {keys.dtype} of shape {keys.shape}, "
                         f"expected int64 of ({rows},)")
    return CacheEntry(name, keys, specs, fixed, var, path, (st.st_dev, st.st_ino))


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
    return cache


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
    keys = np.unique(np.asarray(keys, dtype=np.int64))
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
