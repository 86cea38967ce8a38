"""Shared encoding helpers of the loaders: path resolution, one-hot, feature vectors, ordering."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modyn_store.core.errors import InvalidArgumentError

__all__ = [
    "binary_label",
    "codes",
    "feature_vector",
    "finish",
    "int_column",
    "one_hot",
    "one_hot_codes",
    "read_parquet",
    "resolve_file",
    "time_order",
]


def resolve_file(path: str | Path, filename: str) -> Path:
    """Return ``path`` itself when it is a file, ``path / filename`` when it is a folder."""
    p = Path(path)
    if p.is_dir():
        p = p / filename
    if not p.is_file():
        raise InvalidArgumentError("path", str(path), f"an existing file or a folder holding {filename!r}")
    return p


def read_parquet(path: Path, required: Sequence[str] = (), complete: Sequence[str] = ()) -> pa.Table:
    """Read a Parquet file, dictionary columns decoded to plain strings.

    Raises :class:`InvalidArgumentError` when the file is not Parquet, lacks a ``required`` column
    (the file of another data set, say) or has an empty value in a ``complete`` column.
    """
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidArgumentError("path", str(path), f"a readable Parquet file ({str(exc)[:200]})") from exc
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise InvalidArgumentError("path", str(path), f"a file with the columns {list(required)} (missing "
                                                      f"{missing}; is it the file of another data set?)")
    empty = {c: table.column(c).null_count for c in complete if table.column(c).null_count}
    if empty:
        raise InvalidArgumentError("path", str(path), f"no empty values in the columns {list(complete)} "
                                                      f"(empty rows: {empty})")
    cols = []
    for col in table.columns:
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def binary_label(path: Path, table: pa.Table, column: str, negative: object, positive: object) -> np.ndarray:
    """The int64 label of a two-class ``column``: 1 for ``positive``, 0 for ``negative``.

    Any other value (``"up"`` for ``"UP"``, ``2`` or ``0.5`` for ``0/1``, an empty value) raises
    :class:`InvalidArgumentError` naming the file, the column and the values it holds, instead of
    silently becoming class 0 (or a third class).

    Examples
    --------
    >>> binary_label(Path("f"), pa.table({"c": ["UP", "DOWN"]}), "c", "DOWN", "UP").tolist()
    [1, 0]
    """
    col = table.column(column)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    values = col.to_numpy(zero_copy_only=False)
    allowed = [negative, positive]
    is_pos = np.asarray(values == positive, dtype=bool)
    ok = is_pos | np.asarray(values == negative, dtype=bool)
    ok = ok & pc.is_valid(col).to_numpy(zero_copy_only=False)
    if not ok.all():
        bad = pc.unique(col.filter(pa.array(~ok))).to_pylist()
        shown = ", ".join(repr(v) for v in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise InvalidArgumentError(
            "path", str(path),
            f"a file whose label column {column!r} holds only {allowed} "
            f"({int((~ok).sum())} rows hold other values: {shown})",
        )
    return np.asarray(is_pos, dtype=np.int64)


def int_column(path: Path, table: pa.Table, column: str) -> np.ndarray:
    """``column`` as int64; a value that is not a whole number (``1.5``, ``"x"``) raises
    :class:`InvalidArgumentError` naming the file and the column instead of being truncated."""
    col = table.column(column)
    try:
        return np.asarray(pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidArgumentError("path", str(path), f"whole numbers in the column {column!r} "
                                                      f"({str(exc)[:120]})") from exc


def codes(values: pa.Array | pa.ChunkedArray | Sequence[object], vocabulary: Sequence[object]) -> np.ndarray:
    """Position of each value in ``vocabulary`` (int64); values outside it (and None) give -1.

    Examples
    --------
    >>> codes(["b", None, "z"], ["a", "b"]).tolist()
    [1, -1, -1]
    """
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(list(values))
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    value_set = pa.array(list(vocabulary)).cast(arr.type)
    found = pc.index_in(arr, value_set=value_set).fill_null(-1)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int64)


def one_hot(values: pa.Array | pa.ChunkedArray | Sequence[object], vocabulary: Sequence[object]) -> np.ndarray:
    """One-hot encode ``values`` over a fixed ``vocabulary``; values outside it (and None) give zeros.

    Examples
    --------
    >>> one_hot(["b", None, "a"], ["a", "b"]).tolist()
    [[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]]
    """
    code = codes(values, vocabulary)
    return one_hot_codes(code, len(vocabulary))


def one_hot_codes(code: np.ndarray, n: int) -> np.ndarray:
    """One-hot rows of width ``n`` for int codes; a code outside ``[0, n)`` gives zeros."""
    codes = np.asarray(code, dtype=np.int64)
    out = np.zeros((codes.size, n), dtype=np.float32)
    hit = (codes >= 0) & (codes < n)
    out[np.nonzero(hit)[0], codes[hit]] = 1.0
    return out


def feature_vector(
    numeric: np.ndarray, extra: np.ndarray | None, *, standardize: bool, warmup: float
) -> pa.FixedSizeListArray:
    """Build the ``features`` column: numeric block (optionally standardized) then ``extra``.

    Standardization uses the mean and standard deviation of the first ``warmup`` share of the rows
    (rows must already be in time order), so no statistic looks past the warm-up period.
    Constant columns keep a scale of 1.
    """
    if not 0.0 < warmup <= 1.0:
        raise InvalidArgumentError("warmup", warmup, "a share in (0, 1]")
    block = np.asarray(numeric, dtype=np.float64)
    if standardize and block.shape[0] > 0 and block.shape[1] > 0:
        head = block[: max(1, int(round(block.shape[0] * warmup)))]
        mean = head.mean(axis=0)
        std = head.std(axis=0)
        # a constant column is flat however its mean rounds (a mean an ulp off its value gives a
        # std of ~1e-16, which would scale every later value by ~1e16): x - value, scale 1
        flat = ~(std > 0) | (head.max(axis=0) == head.min(axis=0))
        mean[flat] = head[0, flat]
        std[flat] = 1.0
        block = (block - mean) / std
    parts = [block.astype(np.float32)]
    if extra is not None:
        parts.append(np.asarray(extra, dtype=np.float32))
    full = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(full.ravel(), type=pa.float32()), full.shape[1])


def time_order(ts: pa.Array | pa.ChunkedArray, key: np.ndarray) -> np.ndarray:
    """Indices that sort rows by ``(ts, key)``; stable, so source order breaks ties."""
    table = pa.table({"ts": ts, "key": pa.array(key, type=pa.int64())})
    return pc.sort_indices(table, sort_keys=[("ts", "ascending"), ("key", "ascending")]).to_numpy()


def finish(columns: dict[str, pa.Array | np.ndarray], order: np.ndarray) -> pa.Table:
    """Assemble the canonical table (``key``, ``ts``, ``label``, ...) in the given row order."""
    table = pa.table(columns)
    return table.take(pa.array(order, type=pa.int64())).combine_chunks()
