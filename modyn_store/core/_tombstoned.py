"""Which keys a delete finds tombstoned already: the tombstone table as the process keeps it.

Every delete checks the keys it names against the tombstone table, and a scan of that table
opens each of its fragments (about ten under one-key deletes, each of which adds one). So a
writer keeps the table's content, each key with the first version that tombstoned it, in the
process's map of derived values (keyed by the table's manifest, see
:mod:`~modyn_store.core._derived`), and after its own append to the table keeps the merged
content under the new manifest. The merge is taken only where the new manifest is provably the
old one plus the appended fragment: every old fragment with the same data and deletion files
(data files are uniquely named) and one new fragment of as many rows as were appended.
Anything else (another writer, a compaction, an erase, a table made again) is a miss, and the
table is read again.

Only a delete of at most :data:`READ_FOR_KEYS` keys reads the whole table to keep its content;
a larger one where nothing is kept scans the table for its keys, as does every delete of a
table of more than :data:`MAX_KEPT_ROWS` rows (a filtered scan, which holds only the rows it
hits: a delete of a few keys never holds a large table's keys, and there a scan's cost is its
rows rather than its fragments).

Example
-------
>>> import tempfile, numpy as np, pyarrow as pa
>>> from modyn_store import Store
>>> store = Store.open(tempfile.mkdtemp() + "/s", create=True)
>>> _ = store.append(pa.table({"key": [1, 2, 3], "ts": [1, 2, 3]}))
>>> _ = store.delete(keys=[2])
>>> tombstoned(store._tables, np.array([1, 2, 3]), store.version).tolist()
[2]
>>> tombstoned(store._tables, np.array([1, 2, 3]), store.version - 1).tolist()  # before the delete
[]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from engine._search import isin_sorted_numpy, sorted_unique
from modyn_store.core._derived import DERIVED, identity
from modyn_store.core._key_rows import found_keys
from modyn_store.core._logfold import LogFold

if TYPE_CHECKING:
    from modyn_store.core._tables import Tables

__all__ = ["MAX_KEPT_ROWS", "READ_FOR_KEYS", "WHAT", "carry_over", "first_versions", "keep_for_reads", "last_delete",
           "read_what", "tombstoned"]

#: the largest tombstone table a writer keeps in memory (16 bytes a row: 1 MiB)
MAX_KEPT_ROWS = 1 << 16
#: a delete of at most this many keys reads the whole table to keep its content where the
#: process keeps none: deletes that come one after another are small (erasure requests as they
#: arrive); a large one scans for its keys as before, without paying to read, sort and carry
#: over the whole table for deletes that may not follow
READ_FOR_KEYS = 64
#: the name of the kept value (its form: the keys ascending and distinct, the first version
#: that tombstoned each, and the table's row count)
WHAT = "tombstones/first-version/1"


def read_what(version: int) -> str:
    """The name of what a read of ``version`` derives from the tombstone table (see
    ``Snapshot._dead``): (the keys tombstoned at or before it, the same sorted and distinct),
    or only the second where no key is tombstoned twice."""
    return f"tombstoned/1/at-or-before/{version}"


def _fold_last(before: int | None, records: Any) -> int:
    return max([before or 0, *(r.version for r in records if r.op == "delete" or r.deleted)])


#: the last version that deleted, of the last logs read (see ``_logfold``)
_LAST = LogFold(_fold_last)


def last_delete(records: Any, version: int) -> int:
    """The last version at or before ``version`` whose record deleted keys (0: none). Only
    deletes write tombstones, so every version from it up to the next delete has its keys
    tombstoned at or before it: a read of any of them derives (and keeps) :func:`read_what` of
    that version, which the delete may have kept already (:func:`keep_for_reads`).

    >>> from types import SimpleNamespace as R
    >>> log = [R(version=1, op="append", deleted=0), R(version=2, op="delete", deleted=3),
    ...        R(version=3, op="append", deleted=0)]
    >>> last_delete(log, 1), last_delete(log, 3)
    (0, 2)
    """
    return _LAST(records, version) or 0


def _key(ds: Any) -> tuple[Any, ...] | None:
    """The name the content of the tombstone table ``ds`` is kept under in the process's map
    (``None`` where this pylance cannot name a manifest: then nothing is kept)."""
    ident = identity(ds)
    return None if ident is None else (ident, WHAT, None)


def first_versions(ds: Any) -> tuple[np.ndarray, ...]:
    """(distinct keys ascending, the lowest ``_version`` of each key's rows, [the row count]) of
    the tombstone table ``ds``; ``()`` where it has more than :data:`MAX_KEPT_ROWS` rows."""
    if sum(f.physical_rows for f in ds.get_fragments()) > MAX_KEPT_ROWS:
        return ()
    t = ds.to_table(columns=["key", "_version"])
    keys, versions = t.column("key").to_numpy(), t.column("_version").to_numpy()
    order = np.argsort(keys, kind="stable")
    keys, versions = keys[order], versions[order]
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if keys.size else np.empty(0, np.intp)
    if starts.size < keys.size:  # a key tombstoned twice: its first version counts
        versions = np.minimum.reduceat(versions, starts)
        keys = keys[starts]
    return keys, versions, np.array([t.num_rows], np.int64)


def tombstoned(tables: Tables, among: np.ndarray, committed: int) -> np.ndarray:
    """The keys among the ascending, distinct ``among`` that the tombstone table holds from a
    version at or before ``committed`` (ascending)."""
    if among.size == 0:
        return among
    ds = tables.open("tombstones")
    if ds is None:  # no tombstone table: no key tombstoned
        return np.empty(0, np.int64)
    key = _key(ds)
    got = None if key is None else DERIVED.peek(key)
    if got is None and among.size <= READ_FOR_KEYS:
        got = tables.derived("tombstones", WHAT, first_versions)
    if not got:  # not kept (a large delete scans instead), or too large to keep
        return found_keys(tables, among, ("tombstones",), committed)
    keys, versions, _ = got
    hit = isin_sorted_numpy(among, keys)  # (searches the shorter side in the longer one)
    hit[hit] = versions[np.searchsorted(keys, among[hit])] <= committed
    return among[hit]


def _files(ds: Any) -> dict[int, Any]:
    """Each fragment's metadata: its data files (uniquely named), deletion file and row count,
    compared as a whole."""
    return {f.fragment_id: f.metadata for f in ds.get_fragments()}


def carry_over(before: Any, after: Any, added: np.ndarray, version: int) -> bool:
    """Keep the content of the tombstone table ``after`` (written as ``before`` plus the rows
    of ``added``'s keys at ``version``) where ``before``'s is kept and ``after`` is provably
    that: ``before``'s fragments unchanged (the same data files, uniquely named, and deletion
    files) and one new fragment of ``added.size`` rows. Returns whether it was kept."""
    old_key, new_key = _key(before), _key(after)
    if old_key is None or new_key is None:
        return False
    old = DERIVED.peek(old_key)
    if not old:  # (not kept, or too large to keep)
        return False
    was, now = _files(before), _files(after)
    new = [f for f in now if f not in was]
    if len(new) != 1 or now[new[0]].physical_rows != added.size or any(now.get(f) != m for f, m in was.items()):
        return False
    keys, versions, rows = old
    total = int(rows[0]) + added.size
    if total > MAX_KEPT_ROWS:
        return False
    # (a delete's keys are distinct and not tombstoned yet; a key already there keeps its
    # first version, so the merge stays exact whatever ``added`` holds)
    distinct = sorted_unique(added)
    fresh = distinct[~isin_sorted_numpy(distinct, keys)]
    at = np.searchsorted(keys, fresh)
    merged = (np.insert(keys, at, fresh), np.insert(versions, at, version), np.array([total], np.int64))
    DERIVED.put(new_key, merged)
    # the state before is superseded: only a delete asks for this value, and a delete reads the
    # table's latest state (up to 1 MiB a delete would otherwise stay until the map is full)
    DERIVED.discard(old_key)
    return True


def keep_for_reads(tables: Tables, version: int) -> bool:
    """After a delete committed ``version``: where the process keeps the tombstone table's
    latest content (the delete's :func:`carry_over`), keep what a read of ``version`` derives
    from it too, so that the first read of the new version, in this process or (through the
    per-user folder) a fresh one, reads no tombstones. Returns whether it did."""
    ds = tables.open("tombstones")
    key = None if ds is None else _key(ds)
    got = None if key is None else DERIVED.peek(key)
    if ds is None or not got:
        return False
    keys, versions, rows = got
    if keys.size != int(rows[0]) or (keys.size and int(versions.max()) > version):
        return False  # a key tombstoned twice (a read keeps its rows), or rows of a later version
    tables.keep_arrays("tombstones", ds, read_what(version), (keys,))
    return True
