"""A recorded train set as catalog rows and back: ``selections`` (one row a key, in order) and,
for per-epoch plans, one row of ``selection_plans`` and of ``selection_plan_weights`` (where the
epochs weigh keys differently), as zstd-compressed ``.npy`` blobs (never pickles).

Example
-------
>>> import numpy as np
>>> from modyn_store.core.trainset import TrainSet
>>> ts = TrainSet(keys=np.array([4, 2]), weights=np.ones(2), version=1, per_epoch=(np.array([1]),))
>>> [(name, t.num_rows) for name, t in trainset_tables("t1", ts)]
[('selections', 2), ('selection_plans', 1)]
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store.core._catalog_tables import (
    PLAN_WEIGHTS,
    PLAN_WEIGHTS_SCHEMA,
    PLANS,
    PLANS_SCHEMA,
    SELECTIONS,
    SELECTIONS_SCHEMA,
)
from modyn_store.core.errors import CorruptionError, DataUnavailableError
from modyn_store.core.trainset import TrainSet

__all__ = ["read_trainset", "trainset_tables"]


def _npy_zst(arr: np.ndarray, dtype: type = np.int64) -> bytes:
    import zstandard

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, dtype=dtype), allow_pickle=False)
    return zstandard.ZstdCompressor(level=3).compress(buf.getvalue())


def _un_npy_zst(blob: bytes) -> np.ndarray:
    import zstandard

    raw = zstandard.ZstdDecompressor().decompress(blob)
    return np.load(io.BytesIO(raw), allow_pickle=False)


def trainset_tables(training_id: str, train_set: TrainSet) -> list[tuple[str, pa.Table]]:
    """The rows that record ``train_set`` for ``training_id``, as ``(table name, rows)``."""
    out = [(SELECTIONS, pa.table(
        {
            "training_id": pa.array([training_id] * train_set.size, pa.string()),
            "key": pa.array(train_set.keys, pa.int64()),
            "weight": pa.array(train_set.weights, pa.float64()),
            "position": pa.array(np.arange(train_set.size, dtype=np.int64)),
        },
        schema=SELECTIONS_SCHEMA,
    ))]
    if train_set.per_epoch is not None:
        lengths = np.array([p.size for p in train_set.per_epoch], dtype=np.int64)
        plans = np.concatenate(train_set.per_epoch) if lengths.sum() else np.empty(0, np.int64)
        out.append((PLANS, pa.table(
            {"training_id": [training_id], "lengths": [_npy_zst(lengths)], "positions": [_npy_zst(plans)]},
            schema=PLANS_SCHEMA,
        )))
    if train_set.per_epoch_weights is not None:
        flat_w = np.concatenate(train_set.per_epoch_weights)
        out.append((PLAN_WEIGHTS, pa.table(
            {"training_id": [training_id], "weights": [_npy_zst(flat_w, np.float64)]}, schema=PLAN_WEIGHTS_SCHEMA)))
    return out


def read_trainset(store: Any, training_id: str, n_keys: int, version: int, digest: str) -> TrainSet:
    """The train set recorded for ``training_id`` (``n_keys`` keys selected at ``version``),
    checked against its ``digest``; :class:`DataUnavailableError` when its rows are missing,
    :class:`CorruptionError` when they are not the ones recorded (other keys, weights or plans
    than the digest's, rows missing or added): damage, not data that was erased."""
    t = store.read_table(SELECTIONS, None, filter=f"training_id = '{training_id}'")
    if t is None:
        raise DataUnavailableError(f"the selections table holds no rows of {training_id!r}")
    pos = t.column("position").to_numpy()
    order = np.argsort(pos, kind="stable")
    keys = t.column("key").to_numpy()[order]
    weights = t.column("weight").to_numpy()[order]
    if keys.size != n_keys or not np.array_equal(pos[order], np.arange(keys.size)):
        raise CorruptionError(
            f"the selection of {training_id!r} holds {keys.size} rows, expected positions 0..{n_keys - 1}"
        )
    per_epoch = None
    p = store.read_table(PLANS, None, filter=f"training_id = '{training_id}'")
    if p is not None and p.num_rows:
        lengths = _un_npy_zst(p.column("lengths")[0].as_py())
        flat = _un_npy_zst(p.column("positions")[0].as_py())
        per_epoch = tuple(np.split(flat, np.cumsum(lengths)[:-1]))
    epoch_weights = None
    w = store.read_table(PLAN_WEIGHTS, None, filter=f"training_id = '{training_id}'")
    if w is not None and w.num_rows and per_epoch is not None:
        flat_w = _un_npy_zst(w.column("weights")[0].as_py())
        if flat_w.dtype != np.float64 or flat_w.size != sum(plan.size for plan in per_epoch):
            raise CorruptionError(f"the stored epoch weights of {training_id!r} do not fit its epoch plans")
        epoch_weights = tuple(np.split(flat_w, np.cumsum([plan.size for plan in per_epoch])[:-1]))
    ts = TrainSet(keys=keys, weights=weights, version=version, per_epoch=per_epoch, per_epoch_weights=epoch_weights)
    if ts.digest() != digest:
        raise CorruptionError(f"the stored selection of {training_id!r} does not match its digest")
    return ts
