"""Rows of a snapshot by key: row ids, locating keys for bulk readers, and ``take``.

Small requests go through point lookups (the key index, :mod:`~modyn_store.core.keyindex`);
large ones through the snapshot's key set or one streamed scan. Every row read back is checked
to hold the key asked for, and a key whose row is missing is reported as erased, purged or
damage (:func:`missing_rows`), never answered with another row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import pyarrow as pa

from engine._search import isin_sorted_numpy as _isin_sorted
from modyn_store.core._failures import READ_ATTEMPTS
from modyn_store.core._keyscan import SCAN_BATCH
from modyn_store.core._validate import as_keys
from modyn_store.core.errors import CorruptionError, DataUnavailableError, UnknownKeyError
from modyn_store.core.rows import locate_keys, take_by_row_id

if TYPE_CHECKING:
    from modyn_store.core.snapshot import Snapshot

__all__ = ["contains", "locate", "missing_rows", "purged_error", "row_ids", "take"]


def contains(snap: Snapshot, want: np.ndarray) -> np.ndarray:
    """See :meth:`Snapshot.contains`: point lookups for a small request, else the key set.

    A point lookup reads the samples, then the purged rows and erasures committed up to the
    version the snapshot knew when it began. A vacuum (or erase) that commits and removes rows
    in between would make a purged row look absent, a live key "not live": the lookup is made
    again when one committed meanwhile, and the verified key set answers if they keep coming.
    """
    snap._refresh()
    if snap._keys_cache is None and want.size:
        for _ in range(READ_ATTEMPTS):
            committed = snap._committed
            found = snap._retrying(lambda ds: snap._point(ds, want))
            if found is None:
                break
            snap._refresh()
            if not any(r.op in ("erase", "vacuum") for r in snap._records()[committed : snap._committed]):
                u, inverse, located = found
                return located.live[inverse]
    return _isin_sorted(want, snap.keys())


def row_ids(snap: Snapshot, keys: Any) -> np.ndarray:
    """Stable Lance row ids (``_rowid``) of live ``keys``, in the order given.

    A small request is answered by point lookups (see :meth:`Snapshot.contains`); an error (keys
    not live) is decided on the full key set, so damage reads as damage, not unknown keys.
    """
    want = as_keys(keys)
    if want.size == 0:
        return np.empty(0, np.uint64)
    snap._refresh()
    point = snap._keys_cache is None
    small = snap._retrying(lambda ds: snap._point(ds, want)) if point else None
    if small is None or not small[2].live.all():
        live = _isin_sorted(want, snap.keys())
        if not live.all():
            bad = want[~live]
            raise UnknownKeyError(
                f"{bad.size} keys are not live at version {snap.version}, e.g. {bad[:5].tolist()}"
            )
        purged = _isin_sorted(want, snap.unavailable())
        if purged.any():
            raise purged_error(snap, np.unique(want[purged]))
        if not point:  # the key set was in memory: look the rows up now
            small = snap._retrying(lambda ds: snap._point(ds, want))
    if small is not None:
        u, inverse, located = small
        if located.unavailable.any():
            raise purged_error(snap, u[located.unavailable])
        if not located.found.all():
            missing_rows(snap, u[~located.found])
        return located.row_id[inverse]
    batches = snap._retrying(
        lambda ds: [] if ds is None else [b for r in snap._readers(ds, ["key"], with_row_id=True) for b in r]
    )
    k = np.concatenate([b.column(0).to_numpy() for b in batches]) if batches else np.empty(0, np.int64)
    r = (
        np.concatenate([b.column(b.schema.get_field_index("_rowid")).to_numpy() for b in batches])
        if batches
        else np.empty(0, np.uint64)
    )
    order = np.argsort(k, kind="stable")
    sk = k[order]
    pos = np.minimum(np.searchsorted(sk, want), max(sk.size - 1, 0))
    if sk.size == 0 or not np.array_equal(sk[pos], want):
        bad = want[(sk.size == 0) | (sk[pos] != want)] if sk.size else want
        missing_rows(snap, bad)
    return r[order[pos]]


def purged_error(snap: Snapshot, bad: np.ndarray) -> DataUnavailableError:
    return DataUnavailableError(
        f"{bad.size} keys' rows live at version {snap.version} were purged by vacuum, e.g. {bad[:5].tolist()}",
        keys=bad,
    )


def missing_rows(snap: Snapshot, bad: np.ndarray) -> NoReturn:
    """Raise the right error for live ``bad`` keys whose rows were not found: erased or
    purged by a write that committed meanwhile, else damage."""
    snap._refresh()
    gone = ~_isin_sorted(bad, snap.keys())
    if gone.any():
        raise UnknownKeyError(
            f"{int(gone.sum())} keys were erased while being read, e.g. {bad[gone][:5].tolist()}"
        )
    purged = _isin_sorted(bad, snap.unavailable())
    if purged.any():
        raise DataUnavailableError(
            f"{int(purged.sum())} rows live at version {snap.version} were purged by vacuum while "
            f"being read (e.g. keys {bad[purged][:5].tolist()})",
            keys=bad[purged],
        )
    raise CorruptionError(
        f"{bad.size} keys live at version {snap.version} have no stored row in "
        f"{snap._store.uri!r} (e.g. {bad[:5].tolist()}); run `modyn-store verify`"
    )


def locate(snap: Snapshot, keys: Any) -> tuple[np.ndarray, np.ndarray]:
    """Stable row ids (uint64) and fragment ids (int64) of ``keys``, aligned with them;
    fragment id -1 for a key that is not live at this version or whose row was purged.

    One streamed scan of the key column of this version's fragments checks liveness and
    locates the rows together (memory follows ``keys``, not the store), for bulk readers
    such as the training loader (:meth:`Snapshot.row_reader`).
    """
    want = as_keys(keys)
    if want.size == 0:
        return locate_keys(want, ())

    def read(ds: Any) -> tuple[np.ndarray, np.ndarray]:
        if ds is None:
            return locate_keys(want, ())
        readers = snap._readers(ds, ["key"], batch_size=SCAN_BATCH, with_row_id=True, with_row_address=True)
        # a purged key's row may still be stored (a vacuum's commit comes before its purge): not live
        return locate_keys(want, (b for r in readers for b in r), snap._with_unavailable(snap._dead()))

    return snap._retrying(read)


def take(snap: Snapshot, ds: Any, want: np.ndarray, cols: list[str]) -> pa.Table:
    if not cols:
        # no columns (as to_table(columns=[])): one row per key all the same, each key's row
        # read and checked like any other take
        return take(snap, ds, want, ["key"]).select([])
    snap._refresh()
    small = snap._point(ds, want, tuple(cols)) if snap._keys_cache is None and want.size else None
    if small is not None and small[2].live.all() and not small[2].unavailable.any():
        rows = small[2].rows
        assert rows is not None
        k = rows.column("key").to_numpy()
        out = rows.take(pa.array(np.minimum(np.searchsorted(k, want), max(k.size - 1, 0))))
        if np.array_equal(out.column("key").to_numpy(), want):  # each row holds its key
            return out.select(cols)
    # row ids (and errors) through row_ids: it decides on the full key set when needed
    rid = row_ids(snap, want)
    if rid.size == 0:
        schema = snap._store.schema
        fields = [schema.field(c) for c in cols] if schema is not None else [pa.field(c, pa.int64()) for c in cols]
        return pa.Table.from_batches([], schema=pa.schema(fields))
    assert ds is not None
    order = np.argsort(rid, kind="stable")
    read = cols if "key" in cols else [*cols, "key"]
    got = take_by_row_id(ds, rid[order], read)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    out = got.take(pa.array(inverse))
    # row ids are checked against the keys they must hold: a row id reused or moved
    # (a concurrent erase, a damaged file) is an error, never another key's row
    if out.num_rows != want.size or not np.array_equal(out.column("key").to_numpy(), want):
        got_keys = out.column("key").to_numpy()
        missing_rows(snap, want[~np.isin(want, got_keys)] if got_keys.size < want.size else want)
    return out if "key" in cols else out.drop_columns(["key"])
