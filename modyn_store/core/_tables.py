"""Thin helpers over the Lance tables of one store: open, append with ``_version``, scan, delete."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import lance
import numpy as np
import pyarrow as pa

from modyn_store.core._derived import DERIVED, session
from modyn_store.core._location import Location
from modyn_store.core.errors import CorruptionError

__all__ = ["READ_ATTEMPTS", "Tables", "damaged_files", "keys_predicate"]

VERSION = "_version"
#: reads retried on a fresh manifest when a concurrent compaction, erase or vacuum removed
#: the files of the manifest they started from
READ_ATTEMPTS = 6
_PREDICATE_CHUNK = 4096
T = TypeVar("T")


def keys_predicate(keys: np.ndarray, column: str = "key") -> Iterator[str]:
    """SQL predicates ``column IN (...)`` over ``keys``, in chunks Lance parses quickly."""
    for start in range(0, keys.size, _PREDICATE_CHUNK):
        chunk = keys[start : start + _PREDICATE_CHUNK]
        yield f"{column} IN ({','.join(str(int(k)) for k in chunk)})"


class Tables:
    """The Lance tables of a store, addressed by name (``samples``, ``scores/loss`` ...)."""

    def __init__(self, location: Location) -> None:
        self.location = location
        # called before every write: raises if this writer no longer holds the store
        self.guard: Callable[[], None] = _no_guard
        self._ranges: dict[str, dict[int, tuple[int, int, int]]] = {}
        # datasets opened by the writer thread while it holds the writer lock (see pinned())
        self._pins = threading.local()
        # the last dataset seen per table, reused while no newer manifest exists (see open())
        self._seen: dict[str, lance.LanceDataset] = {}

    # -- datasets held open for one write ------------------------------------------------
    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Reuse opened datasets in this thread until the block ends.

        Only for a block under the writer lock: no other writer commits meanwhile, so the
        dataset a table was opened as (or left by this writer's own commits) stays its latest
        state, and every open after the first costs nothing instead of a manifest read.
        Other threads of the process are unaffected.
        """
        outer = getattr(self._pins, "cache", None)
        if outer is None:
            self._pins.cache = {}
        try:
            yield
        finally:
            if outer is None:
                self._pins.cache = None

    def _pinned(self) -> dict[str, lance.LanceDataset] | None:
        return getattr(self._pins, "cache", None)  # type: ignore[no-any-return]

    def _unpin(self, name: str) -> None:
        cache = self._pinned()
        if cache is not None:
            cache.pop(name, None)

    # -- per-fragment version ranges -----------------------------------------------------
    def _ranges_path(self, name: str) -> str:
        return self.location.path(f"_meta/{name.replace('/', '__')}.fragments.json")

    def fragment_versions(
        self, name: str, ds: lance.LanceDataset, *, assume: int | None = None
    ) -> dict[int, tuple[int, int]]:
        """``fragment id -> (min _version, max _version)`` for every fragment of ``ds``.

        Lance fragments are immutable apart from deletion files, and their ids are never
        reused, so a range once known stays a valid bound. Ranges come from a side file the
        writer keeps, from this process's memory, or from reading that fragment's
        ``_version`` column once.
        """
        known = self._ranges.get(name)
        if known is None:
            known = {}
            fs = self.location.fs
            path = self._ranges_path(name)
            if fs.exists(path):
                with fs.open(path, "r") as fh:
                    try:
                        known = {int(k): (int(v[0]), int(v[1]), int(v[2])) for k, v in json.load(fh).items()}
                    except (ValueError, KeyError, TypeError, IndexError):
                        known = {}
            self._ranges[name] = known
        out: dict[int, tuple[int, int]] = {}
        for frag in ds.get_fragments():
            fid = frag.fragment_id
            rows = frag.metadata.physical_rows
            hit = known.get(fid)
            if hit is None and assume is not None:
                hit = (assume, assume, rows)
                known[fid] = hit
            elif hit is None or hit[2] != rows:
                col = frag.to_table(columns=["_version"]).column(0).to_numpy()
                lo, hi = (int(col.min()), int(col.max())) if col.size else (0, -1)
                hit = (lo, hi, rows)
                known[fid] = hit
            out[fid] = (hit[0], hit[1])
        return out

    def forget_fragment_versions(self, name: str) -> None:
        """Drop the ranges held in memory: the next use re-reads the side file.

        Writers call it once they hold the writer lock, since another process may have
        written since; under the lock the memory then stays exact until they let go.
        """
        self._ranges.pop(name, None)

    def save_fragment_versions(self, name: str, new_version: int | None = None) -> None:
        """Persist the ranges of ``name``'s current fragments (called by the writer).

        With ``new_version``, fragments unknown so far (the side file was re-read when the
        writer took the lock) are the ones the current write created, all at that version,
        and need no reading. The file is written in place: a reader that finds it torn
        ignores it and reads the fragments' ``_version`` columns instead.
        """
        ds = self.open(name)
        if ds is None:
            return
        if new_version is not None:
            self.fragment_versions(name, ds, assume=new_version)
        else:
            self.fragment_versions(name, ds)
        live = {f.fragment_id for f in ds.get_fragments()}
        body = json.dumps({str(k): list(v) for k, v in self._ranges[name].items() if k in live})
        fs = self.location.fs
        path = self._ranges_path(name)
        try:
            fs.pipe_file(path, body.encode())
        except FileNotFoundError:
            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            fs.pipe_file(path, body.encode())

    def uri(self, name: str) -> str:
        return self.location.table_uri(name)

    def exists(self, name: str) -> bool:
        return bool(self.location.fs.exists(self.location.path(f"{name}.lance/_versions")))

    def _has_manifest(self, name: str) -> bool:
        fs = self.location.fs
        try:
            entries = fs.ls(self.location.path(f"{name}.lance/_versions"), detail=False)
        except FileNotFoundError:
            return False
        return any(str(e).endswith(".manifest") for e in entries)

    def uncommitted(self, name: str) -> bool:
        """True for a table folder whose creation never committed (a writer killed mid-create)."""
        return bool(self.location.fs.exists(self.location.path(f"{name}.lance"))) and not self._has_manifest(name)

    def drop(self, name: str) -> None:
        """Remove a table folder (only used for tables whose creation never committed)."""
        self._unpin(name)
        self._seen.pop(name, None)
        self.location.fs.rm(self.location.path(f"{name}.lance"), recursive=True)

    def open(self, name: str) -> lance.LanceDataset | None:
        """The latest committed state of ``name`` (``None`` if it does not exist or never committed)."""
        cache = self._pinned()
        if cache is not None and name in cache:
            return cache[name]
        if not self.exists(name):
            self._seen.pop(name, None)
            return None
        ds = self._unchanged(name)
        if ds is not None:
            if cache is not None:
                cache[name] = ds
            return ds
        for attempt in range(READ_ATTEMPTS):
            try:
                ds = lance.dataset(
                    self.uri(name), storage_options=self.location.storage_options or None, session=session()
                )
                self._remember(name, ds)
                if cache is not None:
                    cache[name] = ds
                return ds
            except (ValueError, OSError) as exc:
                if not self._has_manifest(name):
                    return None  # created by a write that never committed
                if attempt + 1 == READ_ATTEMPTS:
                    raise CorruptionError(
                        f"table {name!r} of {self.location.uri!r} cannot be opened ({exc}); "
                        "run `modyn-store verify`"
                    ) from exc
                time.sleep(0.005 * (attempt + 1))  # a concurrent cleanup removed the manifest read
        return None  # pragma: no cover

    def _manifest(self, name: str, version: int) -> str:
        # Lance's manifest naming (v2 paths, the default): the version counted down from 2^64-1
        return self.location.path(f"{name}.lance/_versions/{(1 << 64) - 1 - version:020d}.manifest")

    def _unchanged(self, name: str) -> lance.LanceDataset | None:
        """The dataset last seen for ``name`` if it is still the latest, else ``None``.

        Lance numbers versions 1, 2, 3 ... and names each manifest by its number, so "the
        manifest seen is still there and no next one exists" costs two existence checks
        instead of a listing and a manifest read. Tables with another naming are reopened.
        The caller gets its own handle (a checkout of the same manifest, no I/O), so nothing
        it does changes another caller's.
        """
        seen = self._seen.get(name)
        if seen is None:
            return None
        fs = self.location.fs
        v = seen.version
        try:
            if not fs.exists(self._manifest(name, v)) or fs.exists(self._manifest(name, v + 1)):
                return None
            return seen.checkout_version(v)
        except (ValueError, OSError):
            return None

    def moved_on(self, name: str, ds: lance.LanceDataset | None) -> bool:
        """Whether ``name`` has committed past ``ds`` (``None``: whether it exists by now)."""
        if ds is None:
            return self._has_manifest(name)
        fs = self.location.fs
        v = ds.version
        try:
            if fs.exists(self._manifest(name, v)):
                return bool(fs.exists(self._manifest(name, v + 1)))
            latest = lance.dataset(self.uri(name), storage_options=self.location.storage_options or None).version
        except (ValueError, OSError):
            return True
        return bool(latest != v)

    def _remember(self, name: str, ds: lance.LanceDataset) -> None:
        try:
            self._seen[name] = ds.checkout_version(ds.version)
        except (ValueError, OSError):
            self._seen.pop(name, None)

    def damage(self, name: str, exc: BaseException) -> CorruptionError:
        """A :class:`CorruptionError` naming the data files of ``name`` that are missing or damaged."""
        bad: list[str] = []
        try:
            ds = lance.dataset(self.uri(name), storage_options=self.location.storage_options or None)
            bad = damaged_files(self.location, name, ds, deep=True)
        except (ValueError, OSError) as inner:
            bad = [f"the table's manifest ({inner})"]
        where = ", ".join(bad) if bad else "no single file (the failure did not repeat per fragment)"
        return CorruptionError(
            f"table {name!r} of {self.location.uri!r} cannot be read ({exc}); damaged: {where}. "
            "Run `modyn-store verify` for a full report"
        )

    def names(self) -> list[str]:
        """Every table in the store, including ``scores/<name>`` tables."""
        fs = self.location.fs
        found: list[str] = []
        for sub in ("", "scores/"):
            base = self.location.path(sub.rstrip("/")) if sub else self.location.root
            if not fs.exists(base):
                continue
            for entry in fs.ls(base, detail=False):
                leaf = str(entry).rstrip("/").rsplit("/", 1)[-1]
                if leaf.endswith(".lance"):
                    found.append(sub + leaf[: -len(".lance")])
        return sorted(found)

    def append(
        self,
        name: str,
        data: pa.Table | Iterable[pa.RecordBatch],
        *,
        schema: pa.Schema | None = None,
    ) -> lance.LanceDataset:
        """Append rows (which already carry ``_version``); create the table on first use."""
        self.guard()
        cache = self._pinned()
        target: Any = cache.get(name) if cache is not None else None
        if target is not None:
            mode = "append"  # opened in this write, so committed
        else:
            mode = "append" if self.exists(name) else "create"
            if mode == "append" and self.uncommitted(name):
                self.drop(name)  # a leftover of a killed create: nothing of it ever committed
                mode = "create"
            target = self.uri(name)
        if isinstance(data, pa.Table):
            source: Any = data
        else:
            assert schema is not None
            source = pa.RecordBatchReader.from_batches(schema, data)
        try:
            ds = lance.write_dataset(
                source,
                target,
                mode=mode,
                enable_stable_row_ids=mode == "create",
                storage_options=self.location.storage_options or None,
            )
        except BaseException:
            self._unpin(name)
            self._seen.pop(name, None)
            raise
        self._remember(name, ds)
        if cache is not None:
            cache[name] = ds
        return ds

    def scan(
        self,
        name: str,
        columns: list[str] | None = None,
        filter: str | None = None,
        *,
        with_row_id: bool = False,
    ) -> pa.Table | None:
        for attempt in range(READ_ATTEMPTS):
            ds = self.open(name)
            if ds is None:
                return None
            try:
                return ds.to_table(columns=columns, filter=filter, with_row_id=with_row_id)
            except (pa.ArrowException, OSError) as exc:  # a file went missing or is damaged
                if attempt + 1 == READ_ATTEMPTS:
                    raise self.damage(name, exc) from exc
                time.sleep(0.005 * (attempt + 1))
        return None  # pragma: no cover

    def derived(self, name: str, what: Hashable, compute: Callable[[lance.LanceDataset], T]) -> T | None:
        """``compute(latest dataset of name)``, kept by the process for the same table content
        (see :mod:`~modyn_store.core._derived`); ``None`` if the table does not exist."""
        for attempt in range(READ_ATTEMPTS):
            ds = self.open(name)
            if ds is None:
                return None
            try:
                return DERIVED.get(ds, what, compute)
            except (pa.ArrowException, OSError) as exc:  # a file went missing or is damaged
                if attempt + 1 == READ_ATTEMPTS:
                    raise self.damage(name, exc) from exc
                time.sleep(0.005 * (attempt + 1))
        return None  # pragma: no cover

    def lookup(self, name: str, keys: np.ndarray, columns: list[str]) -> pa.Table | None:
        """Rows of ``name`` holding one of ``keys`` (with ``_rowid``), through the key index
        where it exists (see :mod:`modyn_store.core.keyindex`); ``None`` if no such table."""
        from modyn_store.core.keyindex import lookup

        for attempt in range(READ_ATTEMPTS):
            ds = self.open(name)
            if ds is None:
                return None
            try:
                return lookup(ds, keys, columns)
            except (pa.ArrowException, OSError) as exc:  # a file went missing or is damaged
                if attempt + 1 == READ_ATTEMPTS:
                    raise self.damage(name, exc) from exc
                time.sleep(0.005 * (attempt + 1))
        return None  # pragma: no cover

    def delete(self, name: str, predicate: str) -> None:
        self.guard()
        ds = self.open(name)
        if ds is not None:
            try:
                ds.delete(predicate)
            except BaseException:
                self._unpin(name)
                raise

    def delete_keys(self, name: str, keys: np.ndarray) -> None:
        self.guard()
        ds = self.open(name)
        if ds is None or keys.size == 0:
            return
        try:
            for predicate in keys_predicate(keys):
                ds.delete(predicate)
        except BaseException:
            self._unpin(name)
            raise

    def rewrite(self, name: str) -> None:
        """Compact ``name``, rewriting every fragment that has deleted rows, and drop old files.

        After this, no data file of the table holds a deleted row's bytes.
        """
        ds = self.open(name)
        if ds is None:
            return
        self._unpin(name)
        ds.optimize.compact_files(materialize_deletions=True, materialize_deletions_threshold=0.0)
        self.cleanup(name)
        if name == "samples":
            self.save_fragment_versions(name)

    def compact_if_fragmented(self, name: str, *, max_fragments: int = 64) -> None:
        """Merge ``name``'s small fragments once it has more than ``max_fragments``.

        Logs and small tables gain a fragment per write; reading thousands of tiny files
        would make every open slow. Old files stay until :meth:`cleanup`, so concurrent
        readers are unaffected.
        """
        ds = self.open(name)
        if ds is None or len(ds.get_fragments()) <= max_fragments:
            return
        self._unpin(name)
        ds.optimize.compact_files()
        if name == "samples":
            self.save_fragment_versions(name)

    def compact(self, name: str) -> None:
        ds = self.open(name)
        if ds is None:
            return
        self._unpin(name)
        ds.optimize.compact_files(materialize_deletions=True, materialize_deletions_threshold=0.0)
        if name == "samples":
            self.save_fragment_versions(name)

    def cleanup(self, name: str) -> None:
        ds = self.open(name)
        if ds is None:
            return
        self._unpin(name)
        ds.cleanup_old_versions(
            older_than=timedelta(0), delete_unverified=True, error_if_tagged_old_versions=False
        )


def _no_guard() -> None:
    """Writes need no check (a local store's file lock cannot be lost)."""


def with_version(table: pa.Table, version: int) -> pa.Table:
    """``table`` with a ``_version`` int64 column set to ``version``."""
    col = pa.array(np.full(table.num_rows, version, dtype=np.int64))
    if VERSION in table.column_names:
        return table.set_column(table.schema.get_field_index(VERSION), VERSION, col)
    return table.append_column(VERSION, col)


def damaged_files(location: Location, name: str, ds: lance.LanceDataset, *, deep: bool) -> list[str]:
    """Data files of ``ds`` that are missing or whose size differs from the manifest's record.

    With ``deep``, every fragment is also read in full and the files of one that fails are
    listed.
    """
    fs = location.fs
    bad: list[str] = []
    for frag in ds.get_fragments():
        files = frag.data_files()
        frag_bad = False
        for f in files:
            path = location.path(f"{name}.lance/data/{f.path}")
            try:
                size = fs.size(path)
            except FileNotFoundError:
                bad.append(f"{path} (missing)")
                frag_bad = True
                continue
            want = getattr(f, "file_size_bytes", None)
            if want and size != want:
                bad.append(f"{path} ({size} bytes, the manifest records {want})")
                frag_bad = True
        if deep and not frag_bad:
            try:
                frag.to_table()
            except (pa.ArrowException, OSError, ValueError) as exc:
                bad.extend(f"{location.path(f'{name}.lance/data/{f.path}')} (unreadable: {exc})" for f in files)
    return bad
