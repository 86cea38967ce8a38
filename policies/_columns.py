"""Arrow columns as NumPy for policies: times as int64 nanoseconds (checked), vectors as 2-D
arrays, integer labels exactly, never through float64 where that would merge them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from modyn_store.core.errors import InvalidArgumentError

__all__ = ["check_float_labels", "column_to_numpy", "datetimes_to_ns", "integer_column"]


def column_to_numpy(col: pa.Array | pa.ChunkedArray, *, name: str = "column") -> np.ndarray:
    """An Arrow column as NumPy: timestamps/dates as int64 ns, fixed-size lists as 2-D arrays.

    A fixed-size list column holding a null raises :class:`InvalidArgumentError` naming the
    first such row (``name[i]``).

    Datetimes outside the ``datetime64[ns]`` range (1677-09-21 to 2262-04-11) raise
    :class:`InvalidArgumentError` naming the first such row (``name[i]``). An integer column
    holding a null reads as float64 (NaN for null), which rounds integers beyond ``2**53``:
    read integers that must stay exact (class labels) with :func:`integer_column`.
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    t = col.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        try:
            col = col.cast(pa.timestamp("ns", tz=getattr(t, "tz", None)))
        except pa.ArrowInvalid:  # out of the ns range: name the row (nulls are not checked)
            dt64 = np.asarray(col.to_numpy(zero_copy_only=False))
            datetimes_to_ns(np.where(np.isnat(dt64), np.zeros(1, dt64.dtype), dt64), name)
            raise  # pragma: no cover - the check above names the row
        return np.asarray(col.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    if pa.types.is_fixed_size_list(t):
        if col.null_count:  # ``flatten`` skips null rows: the rows would no longer line up
            bad = int(np.flatnonzero(~np.asarray(col.is_valid().to_numpy(zero_copy_only=False),
                                                 dtype=bool))[0])
            raise InvalidArgumentError(f"{name}[{bad}]", None, f"a {t} value in every row")
        flat = col.flatten().to_numpy(zero_copy_only=False)
        return np.asarray(flat).reshape(len(col), t.list_size)
    return np.asarray(col.to_numpy(zero_copy_only=False))


def integer_column(col: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None]:
    """An integer Arrow column exactly, never through float64: ``(values, valid)``.

    ``values`` are int64 (uint64 for a uint64 column), 0 at a null; ``valid`` is the validity
    mask, ``None`` when no value is null.

    Example
    -------
    >>> v, ok = integer_column(pa.array([2**62 + 1, None, 7]))
    >>> v.tolist(), ok.tolist()
    ([4611686018427387905, 0, 7], [True, False, True])
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if not pa.types.is_integer(col.type):
        raise InvalidArgumentError("column", col.type, "an integer column")
    valid = None
    if col.null_count:
        valid = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        col = col.fill_null(0)
    values = np.asarray(col.to_numpy(zero_copy_only=False))
    if values.dtype != np.uint64:
        values = values.astype(np.int64, copy=False)
    return values, valid


def check_float_labels(col: pa.Array | pa.ChunkedArray, name: str) -> None:
    """Refuse labels that :func:`column_to_numpy` would merge: an integer column holding a null
    reads as float64 (NaN for null), where integers beyond ``2**53`` round into their neighbours,
    so such a label raises :class:`InvalidArgumentError` naming ``name`` (strategies that must
    keep them read :func:`integer_column`).

    >>> check_float_labels(pa.array([1, None, 2**53 + 1]), "label")
    Traceback (most recent call last):
    ...
    modyn_store.core.errors.InvalidArgumentError: invalid label[2]=9007199254740993: expected integer labels within 2**53 ...
    """
    if pa.types.is_integer(col.type) and col.null_count:
        values, valid = integer_column(col)
        far = (values > 2**53) | (values < -(2**53))
        if far.any():
            bad = int(np.flatnonzero(far)[0])
            raise InvalidArgumentError(f"{name}[{bad}]", int(values[bad]), "integer labels within "
                                       "2**53 in a column with missing labels (read as float64, "
                                       "larger ones would merge)")


_NS_RANGE = "the datetime64[ns] range (1677-09-21 to 2262-04-11)"
_NAT = np.iinfo(np.int64).min  # NaT, as int64
_FINER_THAN_NS = ("ps", "fs", "as")  # never out of the ns range once divided down


def datetimes_to_ns(ts: np.ndarray, name: str) -> np.ndarray:
    """``datetime64`` values as int64 nanoseconds since the epoch, checked: a NaT, or a value
    outside ``datetime64[ns]`` (which ``astype`` would wrap around silently), raises
    :class:`InvalidArgumentError` naming the first such row, ``name[i]``.

    The conversion is monotone, so only the smallest and largest value are converted back to
    check it (a NaT is the smallest value, as int64).

    Example
    -------
    >>> datetimes_to_ns(np.array(["1970-01-01T00:00:01"], dtype="datetime64[s]"), "ts").tolist()
    [1000000000]
    """
    if ts.size == 0:
        return np.empty(0, dtype=np.int64)
    unit, _ = np.datetime_data(ts.dtype)
    raw = ts.view(np.int64)
    lo, hi = int(raw.argmin()), int(raw.argmax())
    if raw[lo] == _NAT:
        bad = int(np.flatnonzero(np.isnat(ts))[0])
        raise InvalidArgumentError(f"{name}[{bad}]", "NaT", f"a datetime within {_NS_RANGE}")
    ns = ts.astype("datetime64[ns]")
    if unit in ("ns", *_FINER_THAN_NS):
        return np.ascontiguousarray(ns.view(np.int64))
    ends = ts[[lo, hi]]
    if (ends.astype("datetime64[ns]").astype(ts.dtype) != ends).any():
        wrapped = ns.astype(ts.dtype) != ts  # off the common path: find the first such row
        bad = int(np.flatnonzero(wrapped)[0])
        raise InvalidArgumentError(f"{name}[{bad}]", str(ts[bad]), f"a datetime within {_NS_RANGE}")
    return np.ascontiguousarray(ns.view(np.int64))
