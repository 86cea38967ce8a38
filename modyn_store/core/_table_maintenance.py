"""The maintenance half of :class:`~modyn_store.core._tables.Tables`: deletes, compaction and
cleanup of old files, on the datasets :class:`Tables` opens (its base class).

Example
-------
>>> from modyn_store.core._tables import Tables
>>> issubclass(Tables, TableMaintenance)
True
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import lance
import numpy as np
import pyarrow as pa

from engine._search import sorted_unique

if TYPE_CHECKING:
    from modyn_store.core._location import Location

__all__ = ["MAX_FRAGMENTS", "MAX_FRAGMENTS_READ_WHOLE", "TableMaintenance"]

#: Lance's own default size of a compacted fragment
_TARGET_ROWS = 1 << 20
#: fragments a table may have before a write merges its small ones
MAX_FRAGMENTS = 64
#: the same for the small tables every read of a version reads whole where no kept entry
#: answers (the first process after a delete, a store on object storage) and every delete
#: searches: each delete adds a fragment, and each fragment costs those reads a file (a request
#: on object storage); a merge of a dozen small ones costs the write that does it a few ms
#: (``benchmarks/small_deletes.py``, docs/PERFORMANCE.md). The log's table gains a fragment per
#: checkpoint and every process's first read of the log reads it whole, a file per fragment
#: (``benchmarks/long_logs.py``, docs/PERFORMANCE.md, long logs): past 8 a checkpoint, one in
#: six, merges six small ones
MAX_FRAGMENTS_READ_WHOLE = {"tombstones": 16, "purged": 16, "versions": 8}

#: the names ``arrow_cast`` gives the value types of dictionary columns (see ``_dictionary_casts``)
_CAST_NAMES = {
    pa.string(): "Utf8", pa.large_string(): "LargeUtf8", pa.binary(): "Binary", pa.large_binary(): "LargeBinary",
    pa.int8(): "Int8", pa.int16(): "Int16", pa.int32(): "Int32", pa.int64(): "Int64",
    pa.uint8(): "UInt8", pa.uint16(): "UInt16", pa.uint32(): "UInt32", pa.uint64(): "UInt64",
    pa.float32(): "Float32", pa.float64(): "Float64",
}


def _dictionary_casts(schema: pa.Schema) -> dict[str, str]:
    """Column -> an update expression that writes the column's values again, for the
    dictionary-encoded top-level columns of ``schema`` (tables of stores made by an earlier
    release): the rows written get a dictionary of their own values only."""
    return {f.name: f"arrow_cast(`{f.name}`, '{_CAST_NAMES[f.type.value_type]}')"
            for f in schema if pa.types.is_dictionary(f.type) and f.type.value_type in _CAST_NAMES}


class TableMaintenance:
    """Deletes, compaction and cleanup of a store's tables (mixed into ``Tables``)."""

    guard: Any
    location: Location

    def open(self, name: str) -> lance.LanceDataset | None:  # pragma: no cover - Tables' own
        raise NotImplementedError

    def _unpin(self, name: str) -> None:  # pragma: no cover - Tables' own
        raise NotImplementedError

    def save_fragment_versions(self, name: str, new_version: int | None = None, *,
                               created_after: int = -1) -> None:  # pragma: no cover - Tables' own
        raise NotImplementedError

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
        """Delete every row of ``name`` whose ``key`` is one of the int64 ``keys`` (repeats
        allowed; null keys are never deleted), as one Lance version: a join of the table's key
        column with the keys (Lance's merge insert), whatever their number; ``key IN (...)``
        predicates would cost a delete, a parse and a scan per few thousand keys
        (docs/PERFORMANCE.md, "Erase and vacuum of many keys").
        """
        self.guard()
        ds = self.open(name)
        if ds is None or keys.size == 0:
            return
        # distinct keys: a source row may match target rows, never another source row
        source = pa.table({"key": pa.array(sorted_unique(np.asarray(keys, dtype=np.int64)), pa.int64())})
        try:
            ds.merge_insert("key").when_matched_delete().execute(source)
        except BaseException:
            self._unpin(name)
            raise

    def rewrite(self, name: str) -> None:
        """Compact ``name``, rewriting every fragment that has deleted rows, and drop old files.

        After this, no data file of the table holds a deleted row's bytes.
        """
        self._own_dictionaries(name)
        self.compact(name)
        self.cleanup(name)

    def _own_dictionaries(self, name: str) -> None:
        """Write the live rows of every fragment with deleted rows again, with dictionaries of
        their own values, where ``name`` has dictionary-encoded columns.

        A fragment's dictionary holds every value its rows had when it was written; compaction
        copies it as it is (and merges those of the fragments it joins), so a deleted row's
        value, the only one to use it, would stay in the rewritten file and in every read of the
        column's dictionary. Lance's update keeps the rows' (stable) row ids; the rewritten
        fragments are then merged and the old files dropped by :meth:`compact` and :meth:`cleanup`.
        """
        ds = self.open(name)
        if ds is None:
            return
        casts = _dictionary_casts(ds.schema)
        if not casts:
            return
        hit = sorted(f.fragment_id for f in ds.get_fragments() if f.metadata.deletion_file is not None)
        if not hit:
            return
        # a row address is fragment id << 32 | offset: one IN list (a disjunction of ranges, one
        # per run of ids, took 11x as long to plan over 4,000 scattered fragments)
        where = f"(_rowaddr >> 32) IN ({', '.join(str(i) for i in hit)})"
        self.guard()
        try:
            ds.update(casts, where=where)
        finally:
            self._unpin(name)

    def compact_if_fragmented(self, name: str, *, max_fragments: int | None = None) -> None:
        """Merge ``name``'s small fragments once it has more than ``max_fragments`` (default:
        :data:`MAX_FRAGMENTS_READ_WHOLE` for the tables named there, else :data:`MAX_FRAGMENTS`).

        Logs and small tables gain a fragment per write; reading thousands of tiny files
        would make every open slow. The merge is tiered: the smallest fragments (three
        quarters of ``max_fragments`` of them) are merged into one and larger ones are left
        as they are, so a row is rewritten about log_k(rows) times in all (k: those three
        quarters, 48 at 64 fragments, 12 at 16) instead of once per merge (a merge rewrote every small fragment, including earlier merges, each time).
        Old files stay until :meth:`cleanup`, so concurrent readers are unaffected.
        """
        if max_fragments is None:
            max_fragments = MAX_FRAGMENTS_READ_WHOLE.get(name, MAX_FRAGMENTS)
        ds = self.open(name)
        if ds is None:
            return
        if len(ds.fragment_ids()) <= max_fragments:
            return  # (a count without a Python object per fragment: this runs after every write)
        frags = ds.get_fragments()
        sizes = sorted(f.physical_rows for f in frags)
        target = min(sum(sizes[: max_fragments * 3 // 4]) + 1, _TARGET_ROWS)
        keep = [f.fragment_id for f in frags if f.physical_rows >= target]
        self._unpin(name)
        ds.optimize.compact_files(target_rows_per_fragment=target, excluded_fragment_ids=keep or None)
        after = self.open(name)
        if after is not None and len(after.get_fragments()) > max_fragments:
            # small fragments between large ones are never merged with each other: merge all
            self._unpin(name)
            after.optimize.compact_files()
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
        """Delete the files of ``name`` no version uses; refused (:class:`CorruptionError`, nothing
        deleted) when the table's folder holds a symbolic link (see ``refuse_table_links``)."""
        from modyn_store.core._marker import refuse_table_links

        ds = self.open(name)
        if ds is None:
            return
        refuse_table_links(self.location, [name])
        self._unpin(name)
        ds.cleanup_old_versions(
            older_than=timedelta(0), delete_unverified=True, error_if_tagged_old_versions=False
        )
