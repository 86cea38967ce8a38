"""The files of one cache entry: how :mod:`training.cache` writes, reads and checks them.

An entry folder holds ``keys.npy`` (sorted keys, written first), ``rows.npy`` (keys in row
order), ``c<i>.npy`` per fixed column, ``c<i>.offsets.npy``/``c<i>.data.npy`` per variable-length
one and ``meta.json`` (written last, with a random build id). Everything is plain ``.npy``,
opened memory-mapped and copy-on-write; anything missing or not what ``meta.json`` says is a
:class:`CacheError`.

The files of one entry are opened as a unit: ``meta.json`` is read before the other files are
opened and again after, and an entry whose ``meta.json`` changed meanwhile (removed and built
again by another process: a new build id) is opened again, so the columns of two builds are
never combined.

Example
-------
>>> import tempfile, numpy as np
>>> from training._cache_files import _read_entry, _write_entry
>>> from training.columns import ColumnSpec
>>> spec = {"x": ColumnSpec("x", "fixed", "<f4", ())}
>>> def fill(alloc):
...     alloc(spec["x"], 2)[:] = [1.5, 2.5]
...     return np.array([7, 3]), {}
>>> folder = tempfile.mkdtemp()
>>> _write_entry(folder, np.array([3, 7]), spec, fill, stage=False)
>>> entry = _read_entry("demo", folder)
>>> entry.keys.tolist(), entry.fixed["x"].tolist()
([7, 3], [1.5, 2.5])
"""

from __future__ import annotations

import errno
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modyn_store.core._keyscan import increasing
from modyn_store.core._plainjson import read_json
from modyn_store.core._trees import remove_tree  # (re-exported: the cache's removals)
from modyn_store.core.errors import InvalidArgumentError
from training.columns import ColumnSpec, VarColumn
from training.errors import CacheError

__all__ = ["FORMAT", "CacheEntry", "DamagedEntryError", "Filler", "remove_tree", "stamp_of"]

FORMAT = 1
_OPEN_TRIES = 50  # opens of an entry replaced by other processes while it is being opened

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
    stamp: bytes | None = field(default=None, repr=False)  # its meta.json: one per build
    device_copies: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def nbytes(self) -> int:
        return int(
            self.keys.nbytes + sum(a.nbytes for a in self.fixed.values()) + sum(v.nbytes for v in self.var.values())
        )

    def alive(self) -> bool:
        """False once the entry was removed from disk (by an erasure or eviction), even if
        another build of it was published at its path since: its ``meta.json`` differs, or its
        ``keys.npy`` is another file (a file system may give a new file a freed inode number,
        so the inode alone does not tell)."""
        if self.path is None:
            return True
        try:
            st = os.stat(os.path.join(self.path, "keys.npy"))
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == self._ident and stamp_of(self.path) == self.stamp


class DamagedEntryError(CacheError):
    """A published entry whose files are not what its ``meta.json`` says. ``stamp`` is the
    ``meta.json`` it was opened by: only that build is to be removed, not a later one."""

    def __init__(self, message: str, stamp: bytes) -> None:
        super().__init__(message)
        self.stamp = stamp

    def __reduce__(self) -> tuple[Any, ...]:  # crosses processes (multiprocessing, Ray, DDP) intact
        return (type(self), (str(self.args[0]) if self.args else "", self.stamp), self.__dict__)


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


def _reserve(path: str) -> None:
    """Allocate the disk blocks of the (sparse) file ``path`` before its mapping is written: a
    full disk then raises ``OSError`` (ENOSPC) here, where a write to an unbacked page of the
    mapping would kill the process with SIGBUS."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is None:  # (not on macOS or Windows)
        return
    with open(path, "r+b") as fh:
        size = os.fstat(fh.fileno()).st_size
        try:
            if size:
                fallocate(fh.fileno(), 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise  # ENOSPC, EDQUOT, ...
            # a file system that cannot reserve blocks: written as before


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
        _reserve(path)
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
        "build": uuid.uuid4().hex,  # tells this build from any other at the same path
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


def stamp_of(path: str) -> bytes | None:
    """The bytes of the entry's ``meta.json`` (unique per build), ``None`` when it has none,
    ``b""`` when it cannot be read."""
    try:
        with open(os.path.join(path, "meta.json"), "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None
    except OSError:
        return b""


def _read_entry(name: str, path: str) -> CacheEntry:
    """The published entry at ``path``: ``FileNotFoundError`` when it is not there (no
    ``meta.json``), :class:`DamagedEntryError` when anything of it is missing or not what its
    metadata says (a file gone, another dtype or shape, metadata of another form).

    ``meta.json`` is read again once every file is open: if another process removed the entry
    meanwhile (its files may then be of two builds, or missing), it is opened again, or reported
    absent when no build is there any more; a :class:`CacheError` if it keeps being replaced."""
    for _ in range(_OPEN_TRIES):
        stamp = stamp_of(path)
        if stamp is None:
            raise FileNotFoundError(f"cache entry {path!r} has no meta.json")
        try:
            if not stamp:
                raise CacheError(f"cache entry {path!r} has an unreadable meta.json")
            entry = _entry_of(name, path, _meta_of(path, stamp), stamp)
        except (OSError, KeyError, TypeError, ValueError, AttributeError, InvalidArgumentError, CacheError) as exc:
            now = stamp_of(path)
            if now is None:
                raise FileNotFoundError(f"cache entry {path!r} was removed while it was opened") from exc
            if now != stamp:
                continue  # replaced while being opened: what failed was another build's file
            if isinstance(exc, CacheError):
                raise DamagedEntryError(str(exc), stamp) from exc
            if isinstance(exc, FileNotFoundError):  # published whole: a file missing is damage
                raise DamagedEntryError(f"cache entry {path!r} lost a file: {exc}", stamp) from exc
            raise DamagedEntryError(
                f"cache entry {path!r} has unreadable metadata: {type(exc).__name__}: {exc}", stamp) from exc
        now = stamp_of(path)
        if now is None:
            raise FileNotFoundError(f"cache entry {path!r} was removed while it was opened")
        if now == stamp:
            return entry
    raise CacheError(f"cache entry {path!r} was replaced by other processes {_OPEN_TRIES} times while it was opened")


def _meta_of(path: str, stamp: bytes) -> Any:
    try:
        return read_json(stamp)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CacheError(f"cache entry {path!r} is unreadable: {exc}") from exc


def _entry_of(name: str, path: str, meta: Any, stamp: bytes) -> CacheEntry:
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
    return CacheEntry(name, keys, specs, fixed, var, path, (st.st_dev, st.st_ino), stamp)
