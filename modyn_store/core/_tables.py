"""Thin helpers over the Lance tables of one store: open, append with ``_version``, scan, delete."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import lance
import numpy as np
import pyarrow as pa

from modyn_store.core import _kept
from modyn_store.core._derived import session
from modyn_store.core._failures import READ_ATTEMPTS, READ_ERRORS, damaged_files, overtaken, vanished
from modyn_store.core._fragments import FragmentRanges, ruled_out
from modyn_store.core._incarnation import Identity, Incarnations, identity, object_identity
from modyn_store.core._location import Location
from modyn_store.core._sql import keys_predicate
from modyn_store.core._table_maintenance import TableMaintenance
from modyn_store.core._table_values import TableValues
from modyn_store.core.errors import CorruptionError, StorageAccessError, StorageUnavailableError

__all__ = ["Tables", "keys_predicate", "with_version"]

VERSION = "_version"


class Tables(TableMaintenance, TableValues):
    """The Lance tables of a store, addressed by name (``samples``, ``scores/loss`` ...)."""

    def __init__(self, location: Location) -> None:
        self.location = location
        # called before every write: raises if this writer no longer holds the store
        self.guard: Callable[[], None] = _no_guard
        self.ranges = FragmentRanges(location)
        # datasets opened by the writer thread while it holds the writer lock (see pinned())
        self._pins = threading.local()
        # the last dataset seen per table, reused while no newer manifest exists (see open())
        self._seen: dict[str, lance.LanceDataset] = {}
        # which incarnation of each table was seen (a table made again restarts its numbering)
        self._incarnations = Incarnations(self._manifest, self._identify)
        # derived arrays may come from and go to the per-user folder (see derived_arrays())
        self.keep_on_disk = True
        # the first committed version that wrote a table, per the log (see _written): such a
        # table without a manifest is damage, never "no such table"
        self.written: Callable[[str], int | None] = lambda name: None
        # each table's Lance version as the last write left it (see _txn.recorded_tables)
        self.floors: Callable[[], dict[str, int]] = dict

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
                self._pins.floors = None

    def pin_floors(self, floors: dict[str, int]) -> None:
        """Check the tables opened in this :meth:`pinned` block against ``floors`` (the head a
        write read under the writer lock) instead of reading the head at each open."""
        if self._pinned() is not None:
            self._pins.floors = floors

    def _pinned(self) -> dict[str, lance.LanceDataset] | None:
        return getattr(self._pins, "cache", None)  # type: ignore[no-any-return]

    def _unpin(self, name: str) -> None:
        cache = self._pinned()
        if cache is not None:
            cache.pop(name, None)

    # -- per-fragment version and key ranges (see modyn_store.core._fragments) ------------
    def fragment_versions(self, name: str, ds: lance.LanceDataset) -> dict[int, tuple[int, int]]:
        """``fragment id -> (min _version, max _version)`` for every fragment of ``ds``."""
        return self.ranges.get(name, ds)

    def fragment_key_bounds(self, name: str, ds: lance.LanceDataset) -> dict[int, tuple[int, int]]:
        """``fragment id -> (min key, max key)`` for the fragments of ``ds`` whose bounds are known."""
        return self.ranges.key_bounds(name, ds)

    def fragments_settled(self, name: str, ds: lance.LanceDataset, version: int) -> set[int]:
        """The ids of the fragments of ``ds`` recorded to hold only rows written at or before
        ``version`` (those whose ranges are unknown here are never among them)."""
        return {fid for fid, (_, top) in self.ranges.recorded_versions(name, ds).items() if top <= version}

    def fragments_holding(self, name: str, ds: lance.LanceDataset, keys: np.ndarray) -> list[Any] | None:
        """The fragments of ``ds`` that may hold one of the ascending ``keys``: all but those
        whose recorded key bounds hold none of them (``None``: none is ruled out, or ``name``
        is not the samples, the one table whose writes record bounds)."""
        if name != "samples":
            return None
        skip = ruled_out(self.fragment_key_bounds(name, ds), keys)
        return [f for f in ds.get_fragments() if f.fragment_id not in skip] if skip else None

    def save_fragment_versions(
        self, name: str, new_version: int | None = None, *, created_after: int = -1, keys: tuple[int, int] | None = None
    ) -> None:
        """Record the ranges of ``name``'s current fragments (called by the writer).

        With ``new_version``, fragments unknown so far whose id is above ``created_after``
        (the highest fragment id when the writer took the lock) are the ones the current write
        created, all at that version, and need no reading; ``keys``: the smallest and largest
        key it wrote. Without it, the fragments were replaced (compaction, recovery, a purge)
        and the side file is rewritten whole.
        """
        ds = self.open(name)
        if ds is None:
            return
        self.ranges.save(
            name, ds, new_version=new_version, created_after=created_after, rewrite=new_version is None, keys=keys
        )

    def uri(self, name: str) -> str:
        return self.location.table_uri(name)

    def exists(self, name: str) -> bool:
        return self.location.exists(f"{name}.lance/_versions", folder=True)

    def _identify(self, path: str) -> Identity | None:
        """The identity of the manifest file ``path`` (see :mod:`._incarnation`)."""
        return identity(path) if self.location.is_local else object_identity(self.location.info(path))

    def _file_exists(self, path: str) -> bool:
        """Whether the file (a manifest) ``path`` exists: one HEAD request on an object store."""
        return os.path.exists(path) if self.location.is_local else self.location.info(path) is not None

    def _has_manifest(self, name: str) -> bool:
        held = self.location.holds(f"{name}.lance/_versions", ".manifest")  # S3: listings, typed errors
        if held is not None:
            return held
        fs = self.location.fs
        try:
            entries = fs.ls(self.location.path(f"{name}.lance/_versions"), detail=False)
        except FileNotFoundError:
            return False
        return any(str(e).endswith(".manifest") for e in entries)

    def uncommitted(self, name: str) -> bool:
        """True for a table folder whose creation never committed (a writer killed mid-create):
        no manifest, and no committed version wrote it (else it is damage: :meth:`open` raises)."""
        return (bool(self.location.fs.exists(self.location.path(f"{name}.lance")))
                and not self._has_manifest(name) and self.written(name) is None and self._recorded(name) is None)

    def drop(self, name: str) -> None:
        """Remove a table folder (only used for tables created by a write that never
        committed), and its fragment ranges: a table made again reuses fragment ids."""
        self._unpin(name)
        self._seen.pop(name, None)
        self._incarnations.forget(name, self.ranges)
        fs = self.location.fs
        for path in (self.location.path(f"{name}.lance"), *self.ranges.files(name)):
            try:
                fs.rm(path, recursive=True)
            except FileNotFoundError:
                pass

    def open(self, name: str) -> lance.LanceDataset | None:
        """The latest committed state of ``name`` (``None`` if it does not exist or never committed)."""
        cache = self._pinned()
        if cache is not None and name in cache:
            return cache[name]
        # the manifest seen still there (the table exists) and no next one: no folder check
        ds = self._unchanged(name)
        if ds is not None:
            if cache is not None:
                cache[name] = ds
            return ds
        if not self.exists(name):
            self._seen.pop(name, None)
            self._incarnations.forget(name, self.ranges)  # a table made again reuses fragment ids
            # the log is read after the folder: a table that another process created and
            # committed in between is there when the folder is looked at again
            if self.written(name) is None:
                return None
            if not self.exists(name):
                return self._absent(name)
        for attempt in range(READ_ATTEMPTS):
            # read before the table (later commits only raise it); under the writer lock, the head
            # the write read when it began (pin_floors), which no other writer moves meanwhile
            least = self._floor(name)
            try:
                ds = lance.dataset(
                    self.uri(name), storage_options=self.location.storage_options or None, session=session()
                )
                if least is not None and ds.version < least:
                    raise CorruptionError(f"table {name!r} of {self.location.uri!r} is at Lance version {ds.version}, "
                                          f"a committed write left it at {least}: its latest manifests were lost; "
                                          "run `modyn-store verify` and restore the store from a backup")
                self._remember(name, ds)
                if cache is not None:
                    cache[name] = ds
                return ds
            except (ValueError, OSError) as exc:
                if not self._has_manifest(name):
                    recorded = self._recorded(name)
                    # a create that never committed, unless it committed since the listing
                    if (self.written(name) is None and recorded is None) or not self._has_manifest(name):
                        return self._absent(name, recorded)
                if attempt + 1 == READ_ATTEMPTS:
                    raise CorruptionError(
                        f"table {name!r} of {self.location.uri!r} cannot be opened ({exc}); "
                        "run `modyn-store verify`"
                    ) from exc
                time.sleep(0.005 * (attempt + 1))  # a concurrent cleanup removed the manifest read
        return None  # pragma: no cover

    def _floor(self, name: str) -> int | None:
        """The Lance version the head recorded for ``name`` (``None``: not recorded); under the
        writer lock, the head the write read when it began (see :meth:`pin_floors`)."""
        pinned = getattr(self._pins, "floors", None) if self._pinned() is not None else None
        return (pinned if pinned is not None else self.floors()).get(name)

    def _recorded(self, name: str) -> int | None:
        """:meth:`_floor` for a table folder without a manifest, but ``None`` for the version
        log's own table, whose loss the head's version finds (see ``_txn.check_head``)."""
        return None if name == "versions" else self._floor(name)

    def _absent(self, name: str, recorded: int | None = None) -> lance.LanceDataset | None:
        """``None`` for a table no committed version wrote; else the table lost its manifests.

        ``recorded``: the Lance version the head recorded for a table folder left without a
        manifest (an extension table the log does not name, whose only manifest after a
        compaction or a purge was lost, would otherwise read as absent)."""
        v = self.written(name)
        if v is not None:
            raise CorruptionError(
                f"table {name!r} of {self.location.uri!r} has no readable manifest, but version {v} of "
                "the log wrote it (its manifests were deleted or damaged); run `modyn-store verify`"
            )
        if recorded is not None:
            raise CorruptionError(
                f"table {name!r} of {self.location.uri!r} has no readable manifest, but a committed write "
                f"left it at Lance version {recorded} (its manifests were deleted or damaged); run "
                "`modyn-store verify` and restore the store from a backup"
            )
        return None

    def _manifest(self, name: str, version: int) -> str:
        return self.location.path(self._manifest_file(name, version))

    @staticmethod
    def _manifest_file(name: str, version: int) -> str:
        return f"{name}.lance/_versions/{_kept.manifest_name(version)}"

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
        v = seen.version
        try:
            if not self._incarnations.current(name, v) or self._file_exists(self._manifest(name, v + 1)):
                return None
            return seen.checkout_version(v)
        except (StorageUnavailableError, StorageAccessError):
            raise  # the object store did not answer or refused: not a table that moved
        except (ValueError, OSError):
            return None

    def moved_on(self, name: str, ds: lance.LanceDataset | None) -> bool:
        """Whether ``name`` has committed past ``ds`` (``None``: whether it exists by now)."""
        if ds is None:
            return self._has_manifest(name)
        v = ds.version
        try:
            if self._file_exists(self._manifest(name, v)):
                return self._file_exists(self._manifest(name, v + 1))
            latest = lance.dataset(self.uri(name), storage_options=self.location.storage_options or None).version
        except (StorageUnavailableError, StorageAccessError):
            raise
        except (ValueError, OSError):
            return True
        return bool(latest != v)

    def _remember(self, name: str, ds: lance.LanceDataset) -> None:
        self._incarnations.opened(name, ds.version, self.ranges)
        try:
            self._seen[name] = ds.checkout_version(ds.version)
        except (ValueError, OSError):
            self._seen.pop(name, None)

    def retry_after(self, name: str, exc: Exception, attempt: int) -> None:
        """Wait before reading ``name`` again after attempt ``attempt`` (from 0) failed with
        ``exc``; or raise: ``exc`` itself unless a file vanished (see :func:`vanished`), and on
        the last attempt a :class:`ConflictError` if maintenance overtook it (:func:`overtaken`),
        else a :class:`CorruptionError` naming the damaged files."""
        if not vanished(exc):
            raise exc
        if attempt + 1 == READ_ATTEMPTS:
            raise (overtaken(self.location, name, exc) or self.damage(name, exc)) from exc
        time.sleep(0.005 * (attempt + 1))

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
            except READ_ERRORS as exc:
                self.retry_after(name, exc, attempt)
        return None  # pragma: no cover

    def scan_kept(
        self,
        name: str,
        columns: list[str],
        filter: str | None,
        keep: Callable[[pa.RecordBatch], pa.RecordBatch],
        *,
        batch_size: int = 1 << 16,
        fragments: Callable[[lance.LanceDataset], list[Any] | None] | None = None,
        exempt: Callable[[lance.LanceDataset], set[int]] | None = None,
    ) -> pa.Table | None:
        """The rows of ``name`` that ``keep`` retains, read batch by batch: memory holds one
        scanned batch and what was kept, never the whole table (``None`` if the table does not
        exist). A read that loses its files to a concurrent maintenance starts over.
        ``fragments``: of the dataset opened, the fragments to read (``None`` from it: all).
        ``exempt``: of the same dataset, the ids of fragments read without ``filter`` (the
        caller vouches that ``keep`` retains the same rows of them either way: a filter whose
        columns need not be read there is not read)."""
        for attempt in range(READ_ATTEMPTS):
            ds = self.open(name)
            if ds is None:
                return None
            try:
                chosen = fragments(ds) if fragments is not None else None
                parts: list[tuple[list[Any] | None, str | None]] = [(chosen, filter)]
                free = exempt(ds) if exempt is not None and filter is not None else set()
                if free:
                    every = chosen if chosen is not None else ds.get_fragments()
                    parts = [([f for f in every if f.fragment_id in free], None),
                             ([f for f in every if f.fragment_id not in free], filter)]
                kept: list[pa.RecordBatch] = []
                for frags, flt in [p for p in parts if p[0] is None or p[0]] or parts[:1]:  # (one for the schema)
                    reader = ds.scanner(columns=columns, filter=flt, batch_size=batch_size, fragments=frags).to_reader()
                    kept.extend(b for b in (keep(batch) for batch in reader) if b.num_rows)
                return pa.Table.from_batches(kept, schema=reader.schema)
            except READ_ERRORS as exc:
                self.retry_after(name, exc, attempt)
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
            except READ_ERRORS as exc:
                self.retry_after(name, exc, attempt)
        return None  # pragma: no cover


def _no_guard() -> None:
    """Writes need no check (a local store's file lock cannot be lost)."""


def with_version(table: pa.Table, version: int) -> pa.Table:
    """``table`` with a ``_version`` int64 column set to ``version``."""
    col = pa.array(np.full(table.num_rows, version, dtype=np.int64))
    if VERSION in table.column_names:
        return table.set_column(table.schema.get_field_index(VERSION), VERSION, col)
    return table.append_column(VERSION, col)
