"""The store's index of materialization caches: which cache folders exist and which keys they hold.

Caches (e.g. the training loader's) live in folders under ``<store>/_cache/``. Before a cache
writes a folder it registers it here with the keys it will hold; the store writes that record
itself, atomically (a temporary file, then a rename), so a builder killed at any point leaves
either no record or a whole one. Erasure consults only this index (never the caches' own
files) and removes every registered folder that holds an erased key, plus any folder nobody
registered (its content is unknown, so it may hold erased bytes).

Example
-------
>>> import numpy as np
>>> from modyn_store import Store
>>> store = Store.open("memory://caches-doc", create=True)
>>> store.caches.register("e1", np.array([3, 1, 2]), folders=["e1", ".tmp-e1-x"])
>>> store.caches.entries()
['e1']
>>> store.caches.holding(np.array([2])), store.caches.holding(np.array([7]))
(['e1'], [])
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from engine._search import sorted_unique
from modyn_store.core._validate import as_keys
from modyn_store.core.errors import InvalidArgumentError

if TYPE_CHECKING:
    from modyn_store.core.store import Store

__all__ = ["CacheIndex"]

INDEX = "_meta/caches"
ROOT = "_cache"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}")


def _valid(name: object) -> bool:
    """Whether ``name`` is an entry or folder name: 1-200 of ``[A-Za-z0-9_.-]``, no ``..``, not ``.``
    (``re.fullmatch``: a final newline is no match)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None and ".." not in name and name != "."


def _check(kind: str, name: object) -> str:
    if not isinstance(name, str) or not _valid(name):
        raise InvalidArgumentError(kind, name, "1-200 letters, digits, '_', '.', '-' (no '/', no '..')")
    return name


class CacheIndex:
    """Registered cache entries of one store: entry name -> (sorted keys, folders under ``_cache``)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def root(self) -> str:
        """The folder that holds every cache folder (``<store>/_cache``)."""
        return self._store.path(ROOT)

    def _paths(self, name: str) -> tuple[str, str]:
        base = self._store.path(f"{INDEX}/{name}")
        return base + ".keys.npy", base + ".json"

    def register(self, name: str, keys: Any, *, folders: Sequence[str]) -> None:
        """Record that the folders ``folders`` (names under :attr:`root`) will hold ``keys``.

        Call it before writing any of the folders; registering a name again replaces its record.
        """
        _check("name", name)
        if isinstance(folders, str) or not folders:
            raise InvalidArgumentError("folders", folders, "a non-empty list of folder names under _cache")
        for f in folders:
            _check("folders", f)
        k = as_keys(keys)  # (a float key refused, never truncated to another key)
        if k.size > 1 and not bool((k[1:] > k[:-1]).all()):  # sorted unique keys need no pass
            k = sorted_unique(k)
        fs = self._store.fs
        kpath, jpath = self._paths(name)
        fs.makedirs(kpath.rsplit("/", 1)[0], exist_ok=True)
        buf = io.BytesIO()
        np.save(buf, k, allow_pickle=False)
        with fs.open(kpath + ".tmp", "wb") as fh:
            fh.write(buf.getvalue())
        fs.mv(kpath + ".tmp", kpath)
        # the JSON record is written last: it is what makes the entry registered
        with fs.open(jpath + ".tmp", "w") as fh:
            json.dump({"folders": list(folders), "keys": int(k.size)}, fh)
        fs.mv(jpath + ".tmp", jpath)

    def remove(self, name: str) -> None:
        """Forget the entry ``name`` (its folders are the caller's to delete); idempotent."""
        _check("name", name)
        fs = self._store.fs
        kpath, jpath = self._paths(name)
        for p in (jpath, kpath):
            try:
                fs.rm(p)
            except FileNotFoundError:
                pass  # not registered, or another process removed the record meanwhile

    def entries(self) -> list[str]:
        """Names of the registered entries. A file in the index whose name :meth:`register`
        refuses (``...json`` would name the entry ``..``) registers nothing and is left out."""
        fs = self._store.fs
        base = self._store.path(INDEX)
        if not fs.exists(base):
            return []
        names = [str(e).rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(base, detail=False)]
        return sorted(e for e in (n[: -len(".json")] for n in names if n.endswith(".json")) if _valid(e))

    def _record(self, name: str) -> tuple[np.ndarray | None, list[str]]:
        """(keys or None if unreadable, folders) of a registered entry."""
        fs = self._store.fs
        kpath, jpath = self._paths(name)
        try:
            with fs.open(jpath, "r") as fh:
                body = json.load(fh)
            folders = [str(f) for f in body["folders"] if _valid(str(f))]
        except (OSError, ValueError, KeyError, TypeError):
            return None, [name]
        try:
            with fs.open(kpath, "rb") as fh:
                keys = np.load(io.BytesIO(fh.read()), allow_pickle=False)
            if keys.dtype != np.int64 or keys.ndim != 1:
                return None, folders
        except (OSError, ValueError, EOFError):
            return None, folders  # unreadable: treated as holding every key
        return keys, folders

    def holding(self, keys: Any) -> list[str]:
        """Registered entries that hold one of ``keys`` (an unreadable record counts as holding all)."""
        want = sorted_unique(as_keys(keys))
        out = []
        for name in self.entries():
            held, _ = self._record(name)
            if held is None or np.isin(want, held, assume_unique=True).any():
                out.append(name)
        return out

    def drop_holding(self, keys: np.ndarray) -> int:
        """Remove every cache folder that may hold one of ``keys``; returns how many entries.

        Registered entries holding a key lose all their folders and their record; folders under
        :attr:`root` that no entry registered (not dot-named) are removed too. Folders are listed
        before the index is read, so a folder seen was registered before it was listed.
        """
        fs = self._store.fs
        if keys.size == 0:
            return 0
        root = self.root
        present = []
        if fs.exists(root):
            present = [str(e).rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(root, detail=False)]
        registered: set[str] = set()
        removed = 0
        hit = set(self.holding(keys))
        for name in self.entries():
            _, folders = self._record(name)
            registered.update(folders)
            if name in hit:
                for f in folders:
                    _remove_folder(fs, self._store.path(f"{ROOT}/{f}"))
                self.remove(name)
                removed += 1
        for f in present:
            if not f.startswith(".") and f not in registered:
                _remove_folder(fs, self._store.path(f"{ROOT}/{f}"))
                removed += 1
        return removed


def _remove_folder(fs: Any, path: str) -> None:
    """Remove the folder ``path`` if it exists. Caches remove their own folders too (eviction,
    a damaged entry, a build's cleanup), so the folder or files in it may vanish meanwhile, and
    a builder may still write into its temporary folder: that is no error, but the folder must
    be gone when this returns."""
    for attempt in range(8):
        try:
            fs.rm(path, recursive=True)
        except OSError:
            pass  # (vanished, refilled, or a file where a folder was listed): tried again
        if not fs.exists(path):
            return
        time.sleep(0.001 * (attempt + 1))  # another process is removing or refilling it
    try:
        fs.rm(path, recursive=True)  # still there: what stops its removal is raised
    except FileNotFoundError:
        pass  # (gone meanwhile after all)
