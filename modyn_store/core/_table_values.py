"""The derived-values half of :class:`~modyn_store.core._tables.Tables`: values computed from a
table's content, kept by the process (:mod:`~modyn_store.core._derived`) and, for int64 arrays
of a table on a local disk, between processes (:mod:`~modyn_store.core._kept`).

Example
-------
>>> from modyn_store.core._tables import Tables
>>> issubclass(Tables, TableValues)
True
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

import lance
import numpy as np

from modyn_store.core import _kept
from modyn_store.core._derived import DERIVED, identity
from modyn_store.core._failures import READ_ATTEMPTS, READ_ERRORS

if TYPE_CHECKING:
    from modyn_store.core._location import Location

__all__ = ["TableValues"]

T = TypeVar("T")


class TableValues:
    """Values derived from a store's tables (mixed into ``Tables``)."""

    location: Location
    keep_on_disk: bool

    def open(self, name: str) -> lance.LanceDataset | None:  # pragma: no cover - Tables' own
        raise NotImplementedError

    def retry_after(self, name: str, exc: Exception, attempt: int) -> None:  # pragma: no cover - Tables' own
        raise NotImplementedError

    def uri(self, name: str) -> str:  # pragma: no cover - Tables' own
        raise NotImplementedError

    def _pinned(self) -> dict[str, lance.LanceDataset] | None:  # pragma: no cover - Tables' own
        raise NotImplementedError

    def derived(self, name: str, what: Hashable, compute: Callable[[lance.LanceDataset], T]) -> T | None:
        """``compute(latest dataset of name)``, kept by the process for the same table content
        (see :mod:`~modyn_store.core._derived`); ``None`` if the table does not exist."""
        got = self._derived(name, what, compute)
        return None if got is None else got[1]

    def _derived(
        self, name: str, what: Hashable, compute: Callable[[lance.LanceDataset], T]
    ) -> tuple[lance.LanceDataset, T, bool] | None:
        """(the dataset read, :meth:`derived`'s value, whether it was computed now)."""
        for attempt in range(READ_ATTEMPTS):
            ds = self.open(name)
            if ds is None:
                return None
            computed: list[bool] = []

            def compute_and_note(d: lance.LanceDataset) -> T:
                computed.append(True)
                return compute(d)

            try:
                return ds, DERIVED.get(ds, what, compute_and_note), bool(computed)
            except READ_ERRORS as exc:
                self.retry_after(name, exc, attempt)
        return None  # pragma: no cover

    def kept_dir(self, name: str) -> str | None:
        """The folder of ``name`` where values derived from it may be kept on disk between
        processes (a table on a local disk; not for ``memory://`` stores nor under ``verify``)."""
        if not self.keep_on_disk or not self.location.is_local or self.location.uri.startswith("memory://"):
            return None
        return self.uri(name)

    def derived_arrays(
        self, name: str, what: str, compute: Callable[[lance.LanceDataset], tuple[np.ndarray, ...]],
        *, kept: bool = True,
    ) -> tuple[np.ndarray, ...] | None:
        """:meth:`derived` for int64 arrays, also kept on disk between processes where the
        table is on a local disk (see :mod:`~modyn_store.core._kept`): a fresh process then
        reads one small file instead of opening and scanning the table. ``kept=False`` takes
        the value from the table (or the process's memory, which only holds values derived from
        tables) and, where it derived it, writes the entry again."""
        table_dir = self.kept_dir(name)
        if table_dir is None or self._pinned() is not None:  # (a writer decides from the tables alone)
            return self.derived(name, what, compute)

        if kept:
            manifest = _kept.latest_manifest(table_dir)
            if manifest is not None:
                # what this process took from disk or derived, named like the entry on disk
                memo = ("kept", table_dir, manifest, what)
                got = DERIVED.peek(memo)
                if got is None:
                    got = _kept.load(table_dir, manifest, what)
                    if got is not None:
                        DERIVED.put(memo, got)
                if got is not None:
                    return got  # type: ignore[no-any-return]
        found = self._derived(name, what, compute)
        if found is None:
            return None
        ds, value, computed = found
        if computed or not kept:  # new here, or replacing an entry a read found wrong
            self._save(table_dir, name, ds, what, value)
        return value

    def keep_arrays(self, name: str, ds: lance.LanceDataset, what: str, value: tuple[np.ndarray, ...]) -> None:
        """Keep ``value`` as :meth:`derived_arrays` ``(name, what)`` of ``ds`` without reading the
        table: for a writer that knows the content it left (``ds``, the latest state). The
        process keeps it, and the per-user folder too where :meth:`derived_arrays` would and a
        read has kept an entry of the table before (a table's first entry also tidies the
        folders of other tables: a read's work, not a write's)."""
        ident = identity(ds)
        if ident is not None:
            DERIVED.put((ident, what, None), value, replace=True)
        table_dir = self.kept_dir(name)
        if table_dir is not None:
            self._save(table_dir, name, ds, what, value, make=False)

    def _save(self, table_dir: str, name: str, ds: lance.LanceDataset, what: str, value: tuple[np.ndarray, ...],
              *, make: bool = True) -> None:
        """Write the entry of ``value`` for ``ds``'s manifest (``make=False``: only into a table
        folder that exists), and keep it in the process under the name a lookup of that manifest uses."""
        read = self._manifest_bytes(table_dir, ds)
        if read is not None:
            _kept.save(table_dir, read, what, value, make=make)
            DERIVED.put(("kept", table_dir, read, what), value, replace=True)

    def kept_source(self, name: str, ds: lance.LanceDataset) -> tuple[str, bytes] | None:
        """``(folder, manifest bytes)`` naming ``ds``'s content for values kept between reads
        (see :meth:`kept_dir`), or ``None`` where none are kept (nor for a writer)."""
        table_dir = self.kept_dir(name)
        if table_dir is None or self._pinned() is not None:
            return None
        read = self._manifest_bytes(table_dir, ds)
        return None if read is None else (table_dir, read)

    @staticmethod
    def _manifest_bytes(table_dir: str, ds: lance.LanceDataset) -> bytes | None:
        """The manifest ``ds`` was opened from, in the local table folder ``table_dir`` (a
        :meth:`kept_dir`): read directly, a tenth of the time through the location's layers."""
        try:
            with open(os.path.join(table_dir, "_versions", _kept.manifest_name(ds.version)), "rb") as fh:
                return fh.read()
        except OSError:
            return None
