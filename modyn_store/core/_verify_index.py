"""``verify``'s checks of the indexes: the sorted key runs of the samples
(:mod:`~modyn_store.core.keyindex`) and every Lance index of the store's tables.

Each function returns the problems found, as sentences; it never changes a file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine._search import sorted_unique
from modyn_store.core import keyindex
from modyn_store.core._failures import READ_ERRORS
from modyn_store.core._keyscan import SCAN_BATCH
from modyn_store.core.errors import CorruptionError

if TYPE_CHECKING:
    from modyn_store.core.store import Store

__all__ = ["key_runs", "lance_indexes"]

#: a Lance index is opened again this often before a failure counts (a concurrent cleanup
#: may remove the files of the manifest verify opened)
_ATTEMPTS = 3


def key_runs(store: Store, deep: bool) -> tuple[list[str], list[str]] | None:
    """(errors, notes) about the sorted key runs: sizes, digests, every block's checksum, key
    order; with ``deep`` also that every samples row the runs cover is in them with its key.
    ``None`` when the store has no key index."""
    raw = store._location.read(keyindex.RUNS_POINTER)
    if raw is None:
        return None
    pointer = keyindex.read_pointer(store, raw)
    if pointer is None:
        return [], [f"{keyindex.RUNS_POINTER} is unreadable or predates checksums: point reads scan "
                    "the key column until the writer's next index_keys() builds the index again"]
    folder = store._location.path(f"{keyindex.RUNS_DIR}/{pointer['dir']}")
    n = int(pointer["rows"])
    try:
        check, _ = keyindex.runs_check(store, pointer)
        if store._location.is_local:
            sk, sr = keyindex.mapped_runs(folder, n)
        else:
            sk = np.frombuffer(store.fs.cat_file(f"{folder}/keys.i64"), "<i8")
            sr = np.frombuffer(store.fs.cat_file(f"{folder}/rowids.u64"), "<u8")
            for leaf, got in (("keys.i64", sk), ("rowids.u64", sr)):
                if got.size != n:
                    raise CorruptionError(f"the key index file {folder}/{leaf!s} holds {got.size} entries, "
                                          f"its pointer says {n}")
        check.check_all(sk, sr)
        if n > 1 and bool((np.asarray(sk[1:]) < np.asarray(sk[:-1])).any()):
            raise CorruptionError(f"the key index {folder!r} is not sorted by key")
    except (CorruptionError, OSError, ValueError) as exc:
        return [f"key index: {exc}"], []
    if not deep:
        return [], []
    return _runs_cover_samples(store, pointer, np.asarray(sk), np.asarray(sr)), []


def _runs_cover_samples(store: Store, pointer: dict[str, Any], sk: np.ndarray, sr: np.ndarray) -> list[str]:
    """Every samples row of a fragment the runs cover (at or below their version) is in them,
    under its key and row id."""
    ds = store._tables.open("samples")
    if ds is None:
        return []
    ranges = store._tables.fragment_versions("samples", ds)
    covered = [f for f in ds.get_fragments() if ranges[f.fragment_id][1] <= pointer["version"]]
    if not covered:
        return []
    missing: list[int] = []
    # in batches: memory is one batch whatever the number of rows (the runs are mapped files)
    scanner = ds.scanner(columns=["key"], fragments=covered, with_row_id=True, batch_size=SCAN_BATCH)
    for rows in scanner.to_batches():
        k, r = rows.column("key").to_numpy(), rows.column("_rowid").to_numpy()
        lo, hi = np.searchsorted(sk, k, "left"), np.searchsorted(sk, k, "right")
        count = hi - lo
        ok = (count == 1) & (sr[np.minimum(lo, max(sk.size - 1, 0))] == r) if sk.size else count < 0
        for i in np.flatnonzero(~ok & (count > 1)).tolist():
            ok[i] = bool((sr[lo[i] : hi[i]] == r[i]).any())
        missing.extend(k[~ok][: 5 - len(missing)].tolist())
        if len(missing) == 5:
            break
    if missing:
        return [f"key index: samples rows of keys {missing} are not in the key index under their row ids"]
    return []


def lance_indexes(store: Store, name: str, ds: Any, deep: bool) -> list[str]:
    """Every Lance index of table ``name``: its files (sizes against the manifest's record)
    and a lookup through it of its smallest key, whose rows must all hold that key (a damaged
    page answers with other rows); with ``deep``, lookups of every key of the table, whose rows
    must be those a scan without the index finds."""
    try:
        described = ds.describe_indices()
    except READ_ERRORS as exc:
        return [f"table {name!r}: its indexes cannot be listed ({exc})"]
    out = []
    for index in described:
        problem = None
        for _ in range(_ATTEMPTS):
            problem = _one_index(store, name, ds, index, deep)
            if problem is None:
                break
            fresh = store._tables.open(name)
            if fresh is None or not any(d.name == index.name for d in fresh.describe_indices()):
                problem = None  # replaced meanwhile by a writer's maintenance
                break
            ds = fresh
            index = next(d for d in fresh.describe_indices() if d.name == index.name)
        if problem is not None:
            out.append(f"table {name!r}: index {index.name!r} {problem}")
    return out


def _one_index(store: Store, name: str, ds: Any, index: Any, deep: bool) -> str | None:
    fs = store.fs
    for seg in index.segments:
        folder = store._location.path(f"{name}.lance/_indices/{seg.uuid}")
        try:
            listed = fs.ls(folder, detail=True)
        except FileNotFoundError:
            return f"has no files ({folder} is missing)"
        size = sum(int(e.get("size") or 0) for e in listed if e.get("type") != "directory")
        if seg.size_bytes and size != int(seg.size_bytes):
            return f"files under {folder} hold {size} bytes, the manifest records {int(seg.size_bytes)}"
    if len(index.field_names) != 1:
        return None
    field = index.field_names[0]
    try:
        stats = ds.stats.index_stats(index.name)
        segs = stats.get("segments") or stats.get("indices") or []
        if not segs or segs[0].get("min") is None:
            return None
        typ = ds.schema.field(field).type
        if not pa.types.is_integer(typ):
            return None
        lo = min(int(s["min"]) for s in segs)
        got = _keys(ds, field, pc.field(field).isin(pa.array([lo], typ)))
        if got.size and bool((got != lo).any()):
            return (f"answers a lookup of {field} {lo} with rows of other keys "
                    f"(e.g. {got[got != lo][:5].tolist()}): its pages are damaged")
        if deep:
            return _every_lookup(ds, field, typ)
    except READ_ERRORS as exc:
        return f"cannot be read ({exc})"
    except (KeyError, TypeError):
        return None  # statistics of a form this check does not know
    return None


#: distinct keys per lookup of ``_every_lookup``
_LOOKUP_KEYS = 1 << 16


def _keys(ds: Any, field: str, flt: Any = None, *, use_index: bool = True) -> np.ndarray:
    """The sorted non-null values of ``field`` in the rows that ``flt`` selects."""
    col = ds.to_table(columns=[field], filter=flt, use_scalar_index=use_index).column(field)
    return np.sort(pc.drop_null(col).to_numpy())


def _every_lookup(ds: Any, field: str, typ: pa.DataType) -> str | None:
    """Look every key of the table up through its index, ``_LOOKUP_KEYS`` distinct keys at a
    time: the rows found must be those a scan without the index finds."""
    want = _keys(ds, field, use_index=False)
    distinct = sorted_unique(want)  # (sorted already: no hashing)
    for s in range(0, distinct.size, _LOOKUP_KEYS):
        part = distinct[s:s + _LOOKUP_KEYS]
        exp = want[np.searchsorted(want, part[0], "left"):np.searchsorted(want, part[-1], "right")]
        got = _keys(ds, field, pc.field(field).isin(pa.array(part, typ)))
        if not np.array_equal(got, exp):
            return (f"answers lookups of {part.size} keys of {field} ({int(part[0])} to {int(part[-1])}) "
                    f"with {got.size} rows, a scan without it finds {exp.size}: its pages are damaged")
    return None
