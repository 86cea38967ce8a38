"""Thin helpers over the Lance tables of one store: open, append with ``_version``, scan, delete."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

import lance
import numpy as np
import pyarrow as pa

from modyn_store._location import Location

__all__ = ["Tables", "keys_predicate"]

VERSION = "_version"
_PREDICATE_CHUNK = 4096


def keys_predicate(keys: np.ndarray, column: str = "key") -> Iterator[str]:
    """SQL predicates ``column IN (...)`` over ``keys``, in chunks Lance parses quickly."""
    for start in range(0, keys.size, _PREDICATE_CHUNK):
        chunk = keys[start : start + _PREDICATE_CHUNK]
        yield f"{column} IN ({','.join(str(int(k)) for k in chunk)})"


class Tables:
    """The Lance tables of a store, addressed by name (``samples``, ``scores/loss`` ...)."""

    def __init__(self, location: Location) -> None:
        self.location = location

    def uri(self, name: str) -> str:
        return self.location.table_uri(name)

    def exists(self, name: str) -> bool:
        return bool(self.location.fs.exists(self.location.path(f"{name}.lance/_versions")))

    def open(self, name: str) -> lance.LanceDataset | None:
        if not self.exists(name):
            return None
        return lance.dataset(self.uri(name), storage_options=self.location.storage_options or None)

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
    ) -> None:
        """Append rows (which already carry ``_version``); create the table on first use."""
        mode = "append" if self.exists(name) else "create"
        if isinstance(data, pa.Table):
            source: Any = data
        else:
            assert schema is not None
            source = pa.RecordBatchReader.from_batches(schema, data)
        lance.write_dataset(
            source,
            self.uri(name),
            mode=mode,
            enable_stable_row_ids=True if mode == "create" else None,
            storage_options=self.location.storage_options or None,
        )

    def scan(
        self,
        name: str,
        columns: list[str] | None = None,
        filter: str | None = None,
        *,
        with_row_id: bool = False,
    ) -> pa.Table | None:
        ds = self.open(name)
        if ds is None:
            return None
        return ds.to_table(columns=columns, filter=filter, with_row_id=with_row_id)

    def delete(self, name: str, predicate: str) -> None:
        ds = self.open(name)
        if ds is not None:
            ds.delete(predicate)

    def delete_keys(self, name: str, keys: np.ndarray) -> None:
        ds = self.open(name)
        if ds is None or keys.size == 0:
            return
        for predicate in keys_predicate(keys):
            ds.delete(predicate)

    def rewrite(self, name: str) -> None:
        """Compact ``name``, rewriting every fragment that has deleted rows, and drop old files.

        After this, no data file of the table holds a deleted row's bytes.
        """
        ds = self.open(name)
        if ds is None:
            return
        ds.optimize.compact_files(materialize_deletions=True, materialize_deletions_threshold=0.0)
        self.cleanup(name)

    def compact(self, name: str) -> None:
        ds = self.open(name)
        if ds is None:
            return
        ds.optimize.compact_files(materialize_deletions=True, materialize_deletions_threshold=0.0)

    def cleanup(self, name: str) -> None:
        ds = self.open(name)
        if ds is None:
            return
        ds.cleanup_old_versions(
            older_than=timedelta(0), delete_unverified=True, error_if_tagged_old_versions=False
        )


def with_version(table: pa.Table, version: int) -> pa.Table:
    """``table`` with a ``_version`` int64 column set to ``version``."""
    col = pa.array(np.full(table.num_rows, version, dtype=np.int64))
    if VERSION in table.column_names:
        return table.set_column(table.schema.get_field_index(VERSION), VERSION, col)
    return table.append_column(VERSION, col)
