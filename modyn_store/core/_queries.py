"""Comparing versions: the keys that changed (``diff``) and the rows triggers consume (``delta``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa

from modyn_store.core.errors import DataUnavailableError, InvalidArgumentError
from modyn_store.core.records import Delta, Diff
from modyn_store.core.snapshot import _isin_sorted

if TYPE_CHECKING:
    from modyn_store.core.store import Store, VersionRef

__all__ = ["delta", "diff"]


def diff(store: Store, a: VersionRef, b: VersionRef) -> Diff:
    """Keys that entered and left the live set from version ``a`` to ``b``."""
    va, vb = store._resolve(a), store._resolve(b)
    ka, kb = store.as_of(va).keys(), store.as_of(vb).keys()
    return Diff(va, vb, kb[~_isin_sorted(kb, ka)], ka[~_isin_sorted(ka, kb)])

def delta(
    store: Store,
    a: VersionRef,
    b: VersionRef,
    columns: list[str] | None = None,
    *,
    on_unavailable: Literal["error", "skip"] = "error",
) -> Delta:
    """Rows inserted and keys deleted or erased in versions ``(a, b]`` (for triggers).

    Rows inserted in the range that ``vacuum`` has since purged cannot be returned: they
    raise :class:`~modyn_store.core.errors.DataUnavailableError` (its ``keys`` name them)
    unless ``on_unavailable="skip"``.
    """
    va, vb = store._resolve(a), store._resolve(b)
    if va > vb:
        raise InvalidArgumentError("a", va, f"a version <= b={vb}")
    if on_unavailable not in ("error", "skip"):
        raise InvalidArgumentError("on_unavailable", on_unavailable, "'error' or 'skip'")
    if on_unavailable == "error":
        _check_purged_inserts(store, va, vb)
    schema = store.schema
    base = ["key", "ts"] + (["label"] if schema is not None and "label" in schema.names else [])
    snap = store.as_of(vb)
    cols = base + [c for c in snap._check_columns(columns) if c not in base] if columns else base
    ds = store._tables.open("samples")
    vfilter = f"_version > {va} AND _version <= {vb}"
    if ds is None:
        inserted = pa.table({"key": pa.array([], pa.int64()), "ts": pa.array([], pa.int64()), "version": pa.array([], pa.int64())})
    else:
        t = ds.to_table(columns=cols + ["_version"], filter=vfilter)
        erased = store._erased_keys()
        if erased.size and t.num_rows:
            t = t.filter(pa.array(~_isin_sorted(t.column("key").to_numpy(), erased)))
        t = t.rename_columns([*cols, "version"]).sort_by([("version", "ascending"), ("ts", "ascending"), ("key", "ascending")])
        inserted = t
    tomb = store._tables.scan("tombstones", ["key"], vfilter)
    er = store._tables.scan("erasures", ["key"], vfilter)
    return Delta(
        va,
        vb,
        inserted,
        np.sort(tomb.column("key").to_numpy()) if tomb is not None else np.empty(0, np.int64),
        np.sort(er.column("key").to_numpy()) if er is not None else np.empty(0, np.int64),
    )
def _check_purged_inserts(store: Store, va: int, vb: int) -> None:
    t = store._tables.scan("purged", ["key"], f"inserted > {va} AND inserted <= {vb}")
    if t is None or t.num_rows == 0:
        return
    keys = np.unique(t.column("key").to_numpy())
    keys = keys[~_isin_sorted(keys, store._erased_keys())]
    if keys.size:
        raise DataUnavailableError(
            f"{keys.size} rows inserted in versions ({va}, {vb}] were purged by vacuum "
            f"(e.g. keys {keys[:5].tolist()}); pass on_unavailable='skip' to read the rest",
            keys=keys,
        )

