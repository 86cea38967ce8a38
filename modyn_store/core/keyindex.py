"""The key index: point lookups by key that do not read every key of the store.

``Snapshot.take``, ``row_ids`` and ``contains`` for a small set of keys find the rows that hold
those keys, the tombstones and the purged rows of those keys, instead of reading, sorting and
checking the whole key column. Liveness is then decided from the rows' ``_version``, the
tombstones, the erasures and the purged rows, as for the full key set.

What serves the lookups:

* **samples: sorted key runs.** Every stored key with its stable row id, sorted by key, in
  plain files under ``_meta/keyindex/<build>/`` (16 bytes a row, plus every 512th key and a
  checksum per 64 rows), named by the pointer ``_meta/keyindex.json`` with the version they
  cover and the digests of the small files and of the pointer itself (a damaged pointer is
  not used: every fragment is scanned). An answer is checked against the checksums of
  the blocks it came from (:mod:`~modyn_store.core._runcheck`): damage raises, never answers. A lookup binary-searches
  them (a local store maps the files; an object store reads the sparse level, then only the
  blocks the keys fall in) and reads the rows by row id. Row ids are stable through
  compaction, so the runs stay valid; a row erased, purged or rolled back since is simply not
  returned by Lance, and every row read back must hold the key the runs name for it.
* **tombstones and purged: Lance scalar indexes (BTREE)** on ``key`` (these tables are small;
  ``optimize_indices`` folds new fragments in).

The **writer** builds both, never a reader (a store may be read-only): :func:`update`, run by
``Store.index_keys()`` and at the end of ``Store.compact()`` under the writer lock. The runs are
rewritten whole (one scan of ``key`` and a sort) when a version since their build added or
removed samples rows (a build streams the key column: keys that grow with the appends are
written through, others are sorted in runs of 2^23 rows and merged, so memory stays bounded;
it writes 16 bytes a row); the new files go to a new folder and the pointer is replaced, so readers
see the old runs or the new ones. Fragments written after the runs' version (appends since the
last build) are scanned flat, so an answer is always exact: only its speed depends on the index.
Without any index a lookup is one scan of the ``key`` column with a hash filter.

Example
-------
>>> import pyarrow as pa
>>> from modyn_store import Store
>>> store = Store.open("memory://keyindex-doc", create=True)
>>> _ = store.append(pa.table({"ts": [1, 2, 3], "x": [0.5, 1.5, 2.5]}))
>>> report = store.index_keys()
>>> report.tables["samples"].unindexed_rows
0
>>> _ = store.append(pa.table({"ts": [4], "x": [3.5]}))
>>> store.as_of().take([3, 0], ["x"]).column("x").to_pylist()  # the new row is scanned flat
[3.5, 0.5]
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modyn_store.core._failures import READ_ATTEMPTS
from modyn_store.core._keyruns import write_sorted
from modyn_store.core._plainjson import read_json
from modyn_store.core._runcheck import _ADVICE, BlockCheck, digest
from modyn_store.core._sql import keys_predicate
from modyn_store.core.errors import CorruptionError

if TYPE_CHECKING:
    from modyn_store.core.store import Store

__all__ = [
    "INDEXED_TABLES", "IndexReport", "Located", "TableIndex", "locate", "lookup", "read_pointer", "table_index", "update",
]

#: tables whose ``key`` column a Lance BTREE index covers (samples have sorted key runs)
INDEXED_TABLES = ("tombstones", "purged")
INDEX_NAME = "key_idx"
#: the sorted key runs of the samples table: a pointer file naming the folder of the current
#: build, which holds ``keys.i64`` (sorted), ``rowids.u64`` (aligned) and ``sparse.i64``
RUNS_POINTER = "_meta/keyindex.json"
RUNS_DIR = "_meta/keyindex"
_RUNS_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}")
#: every STRIDE-th key of the runs is kept in ``sparse.i64`` (the level a remote probe reads whole)
STRIDE = 512
#: entries per checksum block of the runs (``blocks.u64``): an answer checks the two blocks
#: around its search position, so a small block keeps a probe's check to ~128 entries a key
CHECK_STRIDE = 64
#: requested keys per Lance query (each query also scans the unindexed fragments once)
CHUNK = 1 << 20
#: a lookup of at most this share of the rows it scans reads their other columns late (see
#: ``_rows_of_keys``): 10^4 keys of 10^7 rows 1.7x faster, 10^5 about 1.1x, 3 x 10^5 slower
LATE_SHARE = 1 / 100


@dataclass(frozen=True)
class TableIndex:
    """The key index of one table after :func:`update`.

    Attributes
    ----------
    indexed_rows, unindexed_rows:
        Rows the index covers and rows of fragments it does not cover (scanned flat).
    bytes:
        Size of the index files.
    """

    indexed_rows: int
    unindexed_rows: int
    bytes: int


@dataclass(frozen=True)
class IndexReport:
    """What :func:`update` did: per table, the index state afterwards, and the seconds it took."""

    tables: dict[str, TableIndex] = field(default_factory=dict)
    seconds: float = 0.0


def _describe(ds: Any) -> Any:
    """Lance's description of the key index of ``ds`` (``None`` if it has none)."""
    return next((d for d in ds.describe_indices() if d.name == INDEX_NAME), None)


def table_index(store: Store, name: str) -> TableIndex | None:
    """The key index state of table ``name`` (``None`` if the table or its index does not exist)."""
    ds = store._tables.open(name)
    if name == "samples":
        return None if ds is None else _runs_state(store, ds)
    found = None if ds is None else _describe(ds)
    if ds is None or found is None:
        return None
    stats = ds.stats.index_stats(INDEX_NAME)
    return TableIndex(int(stats["num_indexed_rows"]), int(stats["num_unindexed_rows"]), int(found.total_size_bytes))


def update(store: Store) -> IndexReport:
    """Create or update the key index of every indexed table: the writer's maintenance, run
    by :func:`modyn_store.core.maintenance.index_keys` under the writer lock.

    A table without the index gets it; one with it gets the fragments written since folded in.
    Logical content and versions are unchanged; readers are unaffected (old index files stay
    until cleanup).
    """
    t0 = time.perf_counter()
    out: dict[str, TableIndex] = {}
    runs = _build_runs(store)
    if runs is not None:
        out["samples"] = runs
    for name in INDEXED_TABLES:
        ds = store._tables.open(name)
        if ds is None or ds.count_rows() == 0:
            continue
        store._tables.guard()
        if _describe(ds) is None:
            ds.create_scalar_index("key", "BTREE", name=INDEX_NAME)
        elif ds.stats.index_stats(INDEX_NAME)["num_unindexed_rows"]:
            ds.optimize.optimize_indices(index_names=[INDEX_NAME])
        got = table_index(store, name)
        if got is not None:
            out[name] = got
    return IndexReport(out, time.perf_counter() - t0)


def read_pointer(store: Store, raw: bytes | None = None) -> dict[str, Any] | None:
    """The samples' sorted key runs' pointer (``raw``: its bytes, if already read), or ``None``
    when there is none, it is unreadable, or it predates checksums (then lookups scan)."""
    raw = store._location.read(RUNS_POINTER) if raw is None else raw
    if raw is None:
        return None
    try:
        body = read_json(raw)
        check = {"blocks": str(body["check"]["blocks"]), "sparse": str(body["check"]["sparse"])}
        pointer = {"dir": str(body["dir"]), "version": int(body["version"]), "rows": int(body["rows"]), "check": check}
        # its own digest (pointers of earlier releases have none): a changed digit of the
        # version it covers would make point reads skip the fragments written after the build
        if "pointer" in body["check"] and body["check"]["pointer"] != _pointer_digest(pointer):
            return None
        folder = str(body["dir"])
        if not _RUNS_NAME.fullmatch(folder) or folder.strip(".") == "":
            return None  # a folder name under RUNS_DIR only: never a path that leaves it
        return pointer
    except (ValueError, KeyError, TypeError):
        # unreadable, damaged, or built before the runs had checksums: the runs are not used
        # (every fragment is scanned) and the writer's next index_keys() builds them again
        return None


def _pointer_digest(pointer: dict[str, Any]) -> str:
    """The digest of a pointer's fields (the folder, version, rows and file digests)."""
    fields = [pointer["dir"], pointer["version"], pointer["rows"], pointer["check"]["blocks"], pointer["check"]["sparse"]]
    return digest(json.dumps(fields).encode())


def _runs_stale(store: Store, built: int) -> bool:
    """Did a version after ``built`` add or remove samples rows (append, erase, vacuum)?"""
    return any(r.inserted or r.op in ("erase", "vacuum") for r in store._read_records()[built:])


def _build_runs(store: Store) -> TableIndex | None:
    """Write the sorted key runs of the committed samples rows, unless they are current.

    One streamed scan of ``key`` with row ids, sorted in bounded memory
    (:mod:`~modyn_store.core._keyruns`) into three files in a new folder, then the pointer is
    replaced (readers see the old runs or the new ones, never a mix) and old folders go.
    """
    committed = store.version
    ds = store._tables.open("samples")
    current = read_pointer(store)
    fs = store.fs
    if ds is None:
        return None
    if current is None or current["version"] > committed or _runs_stale(store, current["version"]):
        token = f"{committed}-{uuid.uuid4().hex[:12]}"
        folder = store._location.path(f"{RUNS_DIR}/{token}")
        fs.makedirs(folder, exist_ok=True)
        store._tables.guard()
        scan = ds.scanner(columns=["key"], filter=f"_version <= {committed}", with_row_id=True,
                          batch_size=1 << 20).to_batches()
        pairs = ((b.column("key").to_numpy(), b.column("_rowid").to_numpy()) for b in scan)
        sums: list[np.ndarray] = []
        rows = write_sorted(fs, folder, pairs, stride=STRIDE, sums=sums, check_stride=CHECK_STRIDE)
        with fs.open(f"{folder}/blocks.u64", "wb") as fh:  # a checksum per CHECK_STRIDE rows (_runcheck)
            fh.write(np.concatenate([np.empty(0, "<u8"), *sums]).astype("<u8").tobytes())
        check = {leaf: digest(fs.cat_file(f"{folder}/{leaf}.{ext}")) for leaf, ext in (("blocks", "u64"), ("sparse", "i64"))}
        pointer = store._location.path(RUNS_POINTER)
        body = {"dir": token, "version": committed, "rows": int(rows), "check": check}
        check["pointer"] = _pointer_digest(body)
        with fs.open(pointer + ".tmp", "w") as fh:
            json.dump(body, fh)
        fs.mv(pointer + ".tmp", pointer)
        base = store._location.path(RUNS_DIR)
        for entry in fs.ls(base, detail=False):
            if str(entry).rstrip("/").rsplit("/", 1)[-1] != token:
                fs.rm(entry, recursive=True)
    return _runs_state(store, ds)


def _runs_state(store: Store, ds: Any) -> TableIndex | None:
    current = read_pointer(store)
    if current is None:
        return None
    fs = store.fs
    folder = store._location.path(f"{RUNS_DIR}/{current['dir']}")
    size = sum(int(fs.size(f"{folder}/{leaf}")) for leaf in ("keys.i64", "rowids.u64", "sparse.i64"))
    ranges = store._tables.fragment_versions("samples", ds)
    fresh = {fid for fid, (_, hi) in ranges.items() if hi > current["version"]}
    unindexed = sum(f.metadata.physical_rows for f in ds.get_fragments() if f.fragment_id in fresh)
    return TableIndex(current["rows"], unindexed, size)


def _probe(store: Store, pointer: dict[str, Any], keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(found keys, their row ids)`` among sorted distinct ``keys`` in the sorted runs.

    A local store maps the files and binary-searches them; an object store reads the sparse
    level whole, then only the blocks of ``STRIDE`` keys the requested keys fall in. The blocks
    an answer comes from are checked against their checksums (:mod:`~modyn_store.core._runcheck`):
    a file of the wrong size or a changed entry raises :class:`CorruptionError` naming the file.
    """
    folder = store._location.path(f"{RUNS_DIR}/{pointer['dir']}")
    n = pointer["rows"]
    if n == 0 or keys.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.uint64)
    check, sparse = runs_check(store, pointer)
    if store._location.is_local:
        sk, sr = mapped_runs(folder, n)
        pos = np.searchsorted(sk, keys)
        check.check_mapped(sk, sr, check.blocks_around(pos))
        pos = np.minimum(pos, n - 1)
        hit = np.asarray(sk[pos]) == keys
        return keys[hit], np.asarray(sr[pos[hit]], dtype=np.uint64)
    fs = store.fs
    blocks = np.unique(np.maximum(np.searchsorted(sparse, keys, side="right") - 1, 0))
    starts = (blocks * STRIDE * 8).tolist()
    ends = (np.minimum((blocks + 1) * STRIDE, n) * 8).tolist()
    try:
        bk = np.frombuffer(b"".join(fs.cat_ranges([f"{folder}/keys.i64"] * len(starts), starts, ends)), dtype="<i8")
        br = np.frombuffer(b"".join(fs.cat_ranges([f"{folder}/rowids.u64"] * len(starts), starts, ends)), dtype="<u8")
    except (OSError, ValueError) as exc:
        raise CorruptionError(f"the key index files in {folder!r} cannot be read ({exc}); {_ADVICE}") from exc
    check.check_read(bk, br, blocks, STRIDE)
    at = np.minimum(np.searchsorted(bk, keys), bk.size - 1)
    got = bk[at] == keys
    return keys[got], br[at[got]].astype(np.uint64)


def mapped_runs(folder: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``keys.i64`` and ``rowids.u64`` of a local build of ``n`` rows, mapped; a file of another
    size is a :class:`CorruptionError` naming it."""
    out = []
    for leaf, dtype in (("keys.i64", "<i8"), ("rowids.u64", "<u8")):
        path = f"{folder}/{leaf}"
        try:
            size = os.path.getsize(path)
            if size != 8 * n:
                raise CorruptionError(
                    f"the key index file {path!r} holds {size} bytes, its pointer says {n} entries "
                    f"({8 * n} bytes); {_ADVICE}"
                )
            # an empty file cannot be mapped: a build of no rows (every key erased) is empty arrays
            out.append(np.memmap(path, dtype=dtype, mode="r", shape=(n,)) if n else np.empty(0, dtype))
        except (OSError, ValueError) as exc:
            raise CorruptionError(f"the key index file {path!r} cannot be read ({exc}); {_ADVICE}") from exc
    return out[0], out[1]


#: per build folder (and the pointer's digests): its block checksums and sparse level, checked
_CHECKS: dict[tuple[str, str, str, int], tuple[BlockCheck, np.ndarray]] = {}


def runs_check(store: Store, pointer: dict[str, Any]) -> tuple[BlockCheck, np.ndarray]:
    """The block checksums and the sparse level of the build ``pointer`` names, both checked
    against the pointer's digests (read once per process)."""
    folder = store._location.path(f"{RUNS_DIR}/{pointer['dir']}")
    n = int(pointer["rows"])
    key = (folder, pointer["check"]["blocks"], pointer["check"]["sparse"], n)
    got = _CHECKS.get(key)
    if got is not None:
        return got
    arrays = []
    for leaf, dtype in (("blocks.u64", "<u8"), ("sparse.i64", "<i8")):
        path = f"{folder}/{leaf}"
        try:
            raw = store.fs.cat_file(path)
        except (OSError, ValueError) as exc:
            raise CorruptionError(f"the key index file {path!r} cannot be read ({exc}); {_ADVICE}") from exc
        want = -(-n // (CHECK_STRIDE if leaf == "blocks.u64" else STRIDE)) * 8
        if len(raw) != want or digest(raw) != pointer["check"][leaf.split(".")[0]]:
            raise CorruptionError(
                f"the key index file {path!r} is damaged ({len(raw)} bytes, {want} expected; or its "
                f"digest differs from the pointer's); {_ADVICE}"
            )
        arrays.append(np.frombuffer(raw, dtype=dtype))
    got = (BlockCheck(arrays[0], n, CHECK_STRIDE, repr(folder)), arrays[1])
    if len(_CHECKS) > 64:
        _CHECKS.clear()
    _CHECKS[key] = got
    return got


def sample_rows(
    store: Store, ds: Any, keys: np.ndarray, columns: tuple[str, ...] = (), pointer: dict[str, Any] | None = None
) -> pa.Table:
    """``key``, ``_version``, ``columns`` and ``_rowid`` of the samples rows (not deleted) holding
    one of the sorted distinct ``keys``: from the sorted runs where they cover, scanned flat
    elsewhere (``pointer``: the runs' pointer where the caller read it, else read here)."""
    from modyn_store.core.rows import take_by_row_id

    read = ["key", "_version", *[c for c in columns if c not in ("key", "_version")]]
    pointer = read_pointer(store) if pointer is None else pointer
    # fragments whose key bounds hold none of the keys are not read (a delete by key does the same)
    held = store._tables.fragments_holding("samples", ds, keys)
    for attempt in range(READ_ATTEMPTS):
        if pointer is None:
            return lookup(ds, keys, read, held)
        try:
            found, rid = _probe(store, pointer, keys)
            break
        except CorruptionError:
            # a writer's rebuild replaced the pointer and removed the folder read here: read
            # the new runs (damage persists under an unchanged pointer and is raised)
            again = read_pointer(store)
            if again == pointer or attempt + 1 == READ_ATTEMPTS:
                raise
            pointer = again
    assert pointer is not None
    parts = []
    if found.size:
        order = np.argsort(rid)
        got = take_by_row_id(ds, rid[order], read)  # rows deleted since are dropped
        k = got.column("key").to_numpy()
        # every row read back must hold the key the runs name for its row id
        pos = np.minimum(np.searchsorted(found, k), found.size - 1)
        ok = found[pos] == k
        ids = np.where(ok, rid[pos], np.uint64(0)) if found.size else np.zeros(k.size, np.uint64)
        got = got.append_column("_rowid", pa.array(ids, pa.uint64())).filter(pa.array(ok))
        parts.append(got)
    ranges = store._tables.fragment_versions("samples", ds)
    fresh = [f for f in (ds.get_fragments() if held is None else held)
             if ranges[f.fragment_id][1] > pointer["version"]]
    if fresh:
        chunk = pa.array(np.ascontiguousarray(keys, dtype=np.int64))
        parts.append(_rows_of_keys(ds, chunk, columns=read, fragments=fresh, with_row_id=True))
    if not parts:  # (no scan: even an empty one is planned over every fragment)
        return pa.schema([ds.schema.field(c) for c in read] + [pa.field("_rowid", pa.uint64())]).empty_table()
    out = pa.concat_tables([p.select([*read, "_rowid"]) for p in parts])
    if len(parts) > 1:  # a row in a fragment that straddles the runs' version comes twice
        _, first = np.unique(out.column("_rowid").to_numpy(), return_index=True)
        out = out.take(pa.array(np.sort(first)))
    return out


def _rows_of_keys(ds: Any, chunk: pa.Array, **scan: Any) -> pa.Table:
    """The rows of ``ds`` whose ``key`` is in ``chunk`` (``scan``: the scanner's other
    arguments). The filter is an Arrow expression, which Lance converts through Substrait with
    the table's schema; a table holding a column type Substrait has no name for (``duration``,
    ``time64``) is filtered by the same predicate in SQL instead (``chunk``'s keys distinct).

    Where the keys are at most :data:`LATE_SHARE` of the rows scanned, the other columns are
    read for the matching rows only (late materialization): Lance's default for narrow columns
    reads every column of every row, three to four times the time of the key scan a lookup of
    a few keys needs; at a few percent of the rows reading them whole is faster again
    (docs/PERFORMANCE.md, point reads)."""
    frags = scan.get("fragments")
    rows = ds.count_rows() if frags is None else sum(f.physical_rows for f in frags)
    if len(chunk) <= rows * LATE_SHARE:
        scan.setdefault("late_materialization", True)
    try:
        return ds.scanner(filter=pc.field("key").isin(chunk), **scan).to_table()
    except (pa.ArrowNotImplementedError, ValueError) as exc:  # Arrow's or Lance's refusal of the type
        if "substrait" not in str(exc).lower():
            raise
    parts = [ds.scanner(filter=p, **scan).to_table() for p in keys_predicate(chunk.to_numpy())]
    return pa.concat_tables(parts) if parts else ds.scanner(**scan, limit=0).to_table()


def lookup(ds: Any, keys: np.ndarray, columns: list[str], fragments: list[Any] | None = None) -> pa.Table:
    """Rows of ``ds`` (not deleted by Lance) whose ``key`` is in ``keys``, with ``_rowid``.

    ``columns`` must include ``key``. Uses the key index where it covers the fragments and
    scans the others flat, so the answer is exact either way. Row order is unspecified.
    ``fragments``: only these fragments of ``ds`` are read (``None``: all).
    """
    parts = []
    for start in range(0, keys.size if fragments != [] else 0, CHUNK):
        chunk = pa.array(np.ascontiguousarray(keys[start : start + CHUNK], dtype=np.int64))
        parts.append(_rows_of_keys(ds, chunk, columns=columns, with_row_id=True, fragments=fragments))
    if not parts:
        return ds.to_table(columns=columns, limit=0, with_row_id=True)
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


@dataclass(frozen=True)
class Located:
    """Point-lookup answers for sorted distinct keys ``keys`` as of one version.

    ``row_id[i]`` is the stable row id of ``keys[i]``'s row where ``found[i]`` (a stored row
    inserted at or before the version); ``dead`` marks keys soft-deleted at or before the
    version or erased at any time; ``unavailable`` marks keys live at the version whose rows
    vacuum purged.
    """

    keys: np.ndarray
    row_id: np.ndarray
    found: np.ndarray
    dead: np.ndarray
    unavailable: np.ndarray
    #: the rows found, in key order, when columns were asked for
    rows: pa.Table | None = None

    @property
    def live(self) -> np.ndarray:
        """Live at the version (as :meth:`Snapshot.keys` counts it: purged rows included)."""
        return (self.found & ~self.dead) | self.unavailable


def _hits(keys: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Mask over sorted ``keys``: which are in ``found`` (any order, duplicates allowed)."""
    if found.size == 0 or keys.size == 0:
        return np.zeros(keys.size, bool)
    s = np.sort(found)
    pos = np.minimum(np.searchsorted(s, keys), s.size - 1)
    return np.asarray(s[pos] == keys)


def locate(
    store: Store, ds: Any, keys: np.ndarray, version: int, committed: int, columns: tuple[str, ...] = ()
) -> Located:
    """Answer liveness and row ids for sorted distinct ``keys`` without reading every key.

    ``ds`` is the samples dataset to read rows from; tombstones, purged rows and erasures
    are looked up by the same keys (erasures committed up to ``committed`` apply). With
    ``columns``, the rows found are read with them (``Located.rows``, in key order).
    """
    rows = sample_rows(store, ds, keys, columns)
    k = rows.column("key").to_numpy()
    keep = rows.column("_version").to_numpy() <= version
    k, rid = k[keep], rows.column("_rowid").to_numpy()[keep]
    order = np.argsort(k, kind="stable")
    k, rid = k[order], rid[order]
    table = rows.filter(pa.array(keep)).take(pa.array(order)) if columns else None
    if k.size > 1 and (k[1:] == k[:-1]).any():
        dup = np.unique(k[1:][k[1:] == k[:-1]])
        raise CorruptionError(
            f"{store.uri!r}: keys {dup[:5].tolist()} have more than one stored row at version "
            f"{version}; run `modyn-store verify`"
        )
    row_id = np.zeros(keys.size, np.uint64)
    found = np.zeros(keys.size, bool)
    if k.size:
        pos = np.minimum(np.searchsorted(k, keys), k.size - 1)
        found = k[pos] == keys
        row_id[found] = rid[pos[found]]
    erased = _hits(keys, store._erased_keys(committed))
    tomb = store._tables.lookup("tombstones", keys, ["key", "_version"])
    dead = erased.copy()
    if tomb is not None and tomb.num_rows:
        tk = tomb.column("key").to_numpy()[tomb.column("_version").to_numpy() <= version]
        dead |= _hits(keys, tk)
    unavailable = np.zeros(keys.size, bool)
    purged = store._tables.lookup("purged", keys, ["key", "inserted", "deleted", "_version"])
    if purged is not None and purged.num_rows:
        ins, gone = purged.column("inserted").to_numpy(), purged.column("deleted").to_numpy()
        mine = (ins <= version) & (gone > version) & (purged.column("_version").to_numpy() <= committed)
        unavailable = _hits(keys, purged.column("key").to_numpy()[mine]) & ~erased
    return Located(keys, row_id, found, dead, unavailable, table)
