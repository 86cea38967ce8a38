"""Comparing versions: the keys that changed (``diff``) and the rows triggers consume (``delta``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from engine._search import sorted_unique
from modyn_store.core._failures import READ_ATTEMPTS, READ_ERRORS
from modyn_store.core.errors import DataUnavailableError, InvalidArgumentError
from modyn_store.core.records import Delta, Diff
from modyn_store.core.snapshot import _isin_sorted

if TYPE_CHECKING:
    from modyn_store.core.store import Store, VersionRef

__all__ = ["DELTA_VERSION", "delta", "diff"]

#: the column of ``Delta.inserted`` holding each row's inserting version
DELTA_VERSION = "version"


def diff(store: Store, a: VersionRef, b: VersionRef) -> Diff:
    """Keys that entered and left the live set from version ``a`` to ``b`` (erasures apply to
    both, also one that commits while the two are read)."""
    va, vb = store._resolve(a), store._resolve(b)
    before = store._erased_keys()
    ka, kb = store.as_of(va).keys(), store.as_of(vb).keys()
    erased = store._erased_keys()
    if erased.size != before.size:
        # an erase committed between the two reads: it applies to both versions, so it is no
        # change between them (else its keys would look deleted from a to b)
        ka, kb = ka[~_isin_sorted(ka, erased)], kb[~_isin_sorted(kb, erased)]
    return Diff(va, vb, kb[~_isin_sorted(kb, ka)], ka[~_isin_sorted(ka, kb)])

def delta(
    store: Store,
    a: VersionRef,
    b: VersionRef,
    columns: list[str] | None = None,
    *,
    on_unavailable: Literal["error", "skip"] = "error",
    labels: bool = True,
) -> Delta:
    """Rows inserted and keys deleted or erased in versions ``(a, b]`` (for triggers).

    ``deleted`` leaves out keys erased since (in the range or later): an erased key is erased
    at every version, so it is only in ``erased`` of the delta holding its erase.

    Rows inserted in the range that ``vacuum`` has since purged cannot be returned: they
    raise :class:`~modyn_store.core.errors.DataUnavailableError` (its ``keys`` name them)
    unless ``on_unavailable="skip"``. ``labels=False`` leaves the ``label`` column out
    (unless ``columns`` names it).
    """
    va, vb = store._resolve(a), store._resolve(b)
    if va > vb:
        raise InvalidArgumentError("a", va, f"a version <= b={vb}")
    if on_unavailable not in ("error", "skip"):
        raise InvalidArgumentError("on_unavailable", on_unavailable, "'error' or 'skip'")
    if not isinstance(labels, bool):
        raise InvalidArgumentError("labels", labels, "True or False")
    if on_unavailable == "error":
        _check_purged_inserts(store, va, vb)
    schema = store.schema
    base = ["key", "ts"] + (["label"] if labels and schema is not None and "label" in schema.names else [])
    snap = store.as_of(vb)
    cols = base + [c for c in snap._check_columns(columns) if c not in base] if columns else base
    if DELTA_VERSION in cols:
        # a payload column may be named "version" (stores hold such data); delta's own column
        # of that name is what triggers read, so that payload column is read with to_table/take
        raise InvalidArgumentError(
            "columns", [DELTA_VERSION], f"payload columns other than {DELTA_VERSION!r}: delta adds its own "
            f"{DELTA_VERSION!r} column (the inserting store version); read that payload column with to_table or take"
        )
    vfilter = f"_version > {va} AND _version <= {vb}"
    inserted = _inserted(store, va, vb, cols, vfilter)
    if on_unavailable == "error":
        # again after the read: a vacuum may have purged rows between the check and the read
        _check_purged_inserts(store, va, vb)
    else:
        # a vacuum commits before it removes the rows: until its purge finished they are still
        # stored, and are left out here as they are after the purge
        gone = _purged_inserts(store, va, vb)
        if gone.size and inserted.num_rows:
            inserted = inserted.filter(pa.array(~_isin_sorted(inserted.column("key").to_numpy(), gone)))
    tomb = store._tables.scan("tombstones", ["key"], vfilter)
    er = store._tables.scan("erasures", ["key"], vfilter)
    deleted = np.sort(tomb.column("key").to_numpy()) if tomb is not None else np.empty(0, np.int64)
    if deleted.size:
        # an erased key is erased at every version, so it was never live at ``a`` and was not
        # deleted in the range (as in ``diff``); its erase's own delta lists it in ``erased``.
        # Read after the tombstones, so an erase committed meanwhile is applied too.
        deleted = deleted[~_isin_sorted(deleted, store._erased_keys())]
    return Delta(
        va,
        vb,
        inserted,
        deleted,
        np.sort(er.column("key").to_numpy()) if er is not None else np.empty(0, np.int64),
    )


def _inserted(store: Store, va: int, vb: int, cols: list[str], vfilter: str) -> pa.Table:
    """Rows inserted in ``(va, vb]`` (erased ones dropped), sorted by (version, ts, key).

    Only fragments whose ``_version`` range meets ``(va, vb]`` are read (the store keeps each
    fragment's range), so a delta's cost follows its own rows, not the table's; rows that
    arrive already in order are not sorted again.
    """
    empty = pa.table({"key": pa.array([], pa.int64()), "ts": pa.array([], pa.int64()), "version": pa.array([], pa.int64())})
    for attempt in range(READ_ATTEMPTS):
        ds = store._tables.open("samples")
        if ds is None:
            return empty
        try:
            ranges = store._tables.fragment_versions("samples", ds)
            frags = [f for f in ds.get_fragments() if ranges[f.fragment_id][1] > va and ranges[f.fragment_id][0] <= vb]
            # fragments wholly inside (va, vb] (the usual case: one per appended version) need no filter
            inside = all(ranges[f.fragment_id][0] > va and ranges[f.fragment_id][1] <= vb for f in frags)
            if not frags:
                t = ds.schema.empty_table().select(cols + ["_version"])
            elif inside and all(ranges[f.fragment_id][0] == ranges[f.fragment_id][1] for f in frags):
                t = _single_version_rows(ds, frags, cols, ranges)
            else:
                t = ds.scanner(columns=cols + ["_version"], filter=None if inside else vfilter,
                               fragments=frags).to_table()
            break
        except READ_ERRORS as exc:  # a concurrent compaction removed its files
            store._tables.retry_after("samples", exc, attempt)
    erased = store._erased_keys()
    if erased.size and t.num_rows:
        t = t.filter(pa.array(~_isin_sorted(t.column("key").to_numpy(), erased)))
    t = t.rename_columns([*cols, "version"])
    if not _in_delta_order(t):
        t = t.sort_by([("version", "ascending"), ("ts", "ascending"), ("key", "ascending")])
    return t


def _single_version_rows(ds: Any, frags: list[Any], cols: list[str], ranges: dict[int, tuple[int, int]]) -> pa.Table:
    """``cols`` of fragments that each hold one version, with ``_version`` from the fragments'
    version ranges instead of read (half the cost of a one-version delta of narrow rows)."""
    t = ds.scanner(columns=cols, fragments=frags).to_table()
    counts = [f.count_rows() for f in frags]
    if sum(counts) != t.num_rows:  # cannot happen for a fixed manifest; read the column then
        return ds.scanner(columns=cols + ["_version"], fragments=frags).to_table()
    versions = np.repeat(np.array([ranges[f.fragment_id][0] for f in frags], np.int64), counts)
    return t.append_column(pa.field("_version", pa.int64()), pa.array(versions))


def _in_delta_order(t: pa.Table) -> bool:
    """True when ``t`` is already sorted by (version, ts, key) (one vectorized pass)."""
    if t.num_rows < 2:
        return True
    ts_col = t.column("ts")
    if not (pa.types.is_integer(ts_col.type) or pa.types.is_floating(ts_col.type)):
        return False  # other types (timestamps, dates) are left to Arrow's sort
    v = t.column("version").to_numpy()
    ts = ts_col.to_numpy()
    k = t.column("key").to_numpy()
    dv, same_v = v[1:] - v[:-1], v[1:] == v[:-1]
    if (dv < 0).any():
        return False
    if ts.dtype.kind == "f" and np.isnan(ts).any():
        return False
    later_ts = ts[1:] > ts[:-1]
    same_ts = ts[1:] == ts[:-1]
    ok = ~same_v | later_ts | (same_ts & (k[1:] > k[:-1]))
    return bool(ok.all())


def _purged_inserts(store: Store, va: int, vb: int) -> np.ndarray:
    """Sorted keys inserted in ``(va, vb]`` whose rows a committed vacuum purged (erased ones left out)."""
    # rows of committed vacuums only: one under way (or killed before its commit) purged nothing
    t = store._tables.scan("purged", ["key"], f"inserted > {va} AND inserted <= {vb} AND _version <= {store.version}")
    if t is None or t.num_rows == 0:
        return np.empty(0, np.int64)
    keys = sorted_unique(t.column("key").to_numpy())
    return keys[~_isin_sorted(keys, store._erased_keys())]  # type: ignore[no-any-return]


def _check_purged_inserts(store: Store, va: int, vb: int) -> None:
    keys = _purged_inserts(store, va, vb)
    if keys.size:
        raise DataUnavailableError(
            f"{keys.size} rows inserted in versions ({va}, {vb}] were purged by vacuum "
            f"(e.g. keys {keys[:5].tolist()}); pass on_unavailable='skip' to read the rest",
            keys=keys,
        )

