"""Cut a time-ordered stream into slices: :func:`chunk_index`.

Rules (strings, so they fit in YAML pipeline files):

- ``"n:<rows>"``: consecutive blocks of ``rows`` rows (``row // rows``).
- ``"<k>d"`` / ``"<k>h"`` / ``"<k>s"``: buckets of ``k`` days / hours / seconds of a timestamp or
  date ``ts`` (an integer or float ``ts`` is read as seconds since the epoch, fractions rounded
  down, and must lie within the ``datetime64[ns]`` range, 1677-09-21 to 2262-04-11: larger
  numbers are milliseconds or finer and are refused), aligned to the epoch (UTC days).
- ``"year"``: calendar year of a timestamp or date ``ts``, in UTC like the days above (a
  timestamp of another zone is cut at UTC's New Year, not its own); an int64 ``ts`` is taken to be the year
  itself (from -9999 to 9999: larger numbers are times, and refused).
- ``"ts:<width>"``: buckets of ``width`` units of an int64 ``ts`` (e.g. ``"ts:365"`` on a day index).

The result is the bucket number relative to the first row's bucket (so it starts at 0 and, for
sorted ``ts``, never decreases; empty buckets leave gaps).

Example
-------
>>> import pyarrow as pa
>>> chunk_index(pa.array([0, 1, 400, 800]), "ts:365").tolist()
[0, 0, 1, 2]
>>> chunk_index(pa.array([5, 6, 7]), "n:2").tolist()
[0, 0, 1]
>>> [(i, t.num_rows) for i, t in iter_slices(pa.table({"ts": [0, 1, 400]}), "ts:365")]
[(0, 2), (1, 1)]
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modyn_store.core.errors import InvalidArgumentError

__all__ = ["chunk_index", "iter_slices"]

_EXPECTED = "one of 'n:<rows>', '<k>d', '<k>h', '<k>s', 'year', 'ts:<width>' with positive integers"
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "s": 1}


_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_MAX_SIZE = 2**46  # rows, units or seconds; times a day's 86 400 s it stays within int64
#: integer and float event times a time rule reads as seconds: the datetime64[ns] range
_MAX_SECONDS = (2**63 - 1) // 10**9
#: the years an integer ``ts`` may give under ``"year"`` (larger numbers are times, not years)
_MAX_YEAR = 9999


def _seconds(ts: pa.Array, rule: str) -> np.ndarray:
    """Whole seconds since the epoch, rounded down (so 1.5 s before it is second -2, not -1).

    Integer and float event times are seconds; beyond the ``datetime64[ns]`` range (about
    +-292 years from 1970) they are refused: such numbers are milliseconds or finer (any
    millisecond time after mid-April 1970), which read as seconds would cut slices 1000 times
    too short."""
    if pa.types.is_timestamp(ts.type):
        raw = np.asarray(ts.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
        return raw // _PER_SECOND[ts.type.unit]
    if pa.types.is_date(ts.type):
        return np.asarray(ts.cast(pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False), dtype=np.int64) * 86_400
    if pa.types.is_integer(ts.type):
        secs = np.asarray(ts.to_numpy(zero_copy_only=False), dtype=np.int64)
    elif pa.types.is_floating(ts.type):  # seconds since the epoch, fractions rounded down
        x = np.floor(np.asarray(ts.to_numpy(zero_copy_only=False), dtype=np.float64))
        if x.size and not (np.isfinite(x).all() and np.abs(x).max() < 2.0**62):
            raise InvalidArgumentError("ts", "NaN, infinite or beyond +-2**62 seconds", "finite event times")
        secs = x.astype(np.int64)
    else:
        raise InvalidArgumentError("ts", str(ts.type), "an integer, float, date or timestamp column")
    if secs.size and (int(secs.min()) < -_MAX_SECONDS or int(secs.max()) > _MAX_SECONDS):
        bad = int(secs[int(np.argmax(np.abs(secs) > _MAX_SECONDS))])
        raise InvalidArgumentError(
            "ts", f"{bad} (column type {ts.type})",
            f"seconds since the epoch within +-{_MAX_SECONDS} (1677-09-21 to 2262-04-11) for rule {rule!r}: "
            "integer and float event times are read as seconds; for milliseconds or finer store the "
            "column as a timestamp (e.g. timestamp[ms]) or as ISO text, or cut it in its own unit with "
            "'ts:<width>' (a day of milliseconds: 'ts:86400000')")
    return secs


def _size(text: str, rule: str) -> int:
    size = int(text)
    if size > _MAX_SIZE:
        raise InvalidArgumentError("rule", rule, f"a size of at most {_MAX_SIZE}")
    return size


def chunk_index(ts: pa.Array | pa.ChunkedArray | np.ndarray, rule: str) -> np.ndarray:
    """Return the int64 slice number of each row under ``rule`` (see the module docstring)."""
    if isinstance(ts, pa.ChunkedArray):
        ts = ts.combine_chunks()
    elif isinstance(ts, np.ndarray):
        ts = pa.array(ts)
    if ts.null_count:
        raise InvalidArgumentError("ts", f"<{ts.null_count} nulls>", "a column without nulls")
    if pa.types.is_uint64(ts.type):  # read as int64 below, a time beyond 2**63-1 would turn negative
        try:
            ts = ts.cast(pa.int64())
        except pa.ArrowInvalid:
            raise InvalidArgumentError("ts", f"{pc.max(ts).as_py()} (column type uint64)",
                                       "event times within the int64 range (-2**63 .. 2**63-1)") from None
    if not isinstance(rule, str):
        raise InvalidArgumentError("rule", rule, _EXPECTED)
    n = len(ts)
    m = re.fullmatch(r"n:(\d+)", rule)
    if m and _size(m.group(1), rule) > 0:
        return np.arange(n, dtype=np.int64) // int(m.group(1))
    m = re.fullmatch(r"(\d+)([dhs])", rule)
    if m and _size(m.group(1), rule) > 0:
        bucket = _seconds(ts, rule) // (int(m.group(1)) * _UNIT_SECONDS[m.group(2)])
    elif rule == "year":
        if pa.types.is_timestamp(ts.type) or pa.types.is_date(ts.type):
            if pa.types.is_timestamp(ts.type) and ts.type.tz is not None:
                # the UTC year, as '<k>d' counts UTC days: a zone's own year would cut a New York
                # New Year's Eve evening into the next year's slice under one rule and not the other
                ts = ts.cast(pa.timestamp(ts.type.unit))
            bucket = np.asarray(pc.year(ts).to_numpy(zero_copy_only=False), dtype=np.int64)
        elif pa.types.is_integer(ts.type):
            bucket = np.asarray(ts.to_numpy(zero_copy_only=False), dtype=np.int64)
            if bucket.size and (int(bucket.min()) < -_MAX_YEAR or int(bucket.max()) > _MAX_YEAR):
                bad = int(bucket[int(np.argmax(np.abs(bucket) > _MAX_YEAR))])
                raise InvalidArgumentError(
                    "ts", f"{bad} (column type {ts.type})",
                    f"a year from -{_MAX_YEAR} to {_MAX_YEAR} for rule 'year' (an integer ts is the year "
                    "itself); for seconds, milliseconds or finer store the column as a timestamp")
        else:
            raise InvalidArgumentError("ts", str(ts.type), "an integer, date or timestamp column")
    else:
        m = re.fullmatch(r"ts:(\d+)", rule)
        if not (m and _size(m.group(1), rule) > 0):
            raise InvalidArgumentError("rule", rule, _EXPECTED)
        if not pa.types.is_integer(ts.type):
            raise InvalidArgumentError("ts", str(ts.type), f"an integer column for rule {rule!r}")
        bucket = np.asarray(ts.to_numpy(zero_copy_only=False), dtype=np.int64) // int(m.group(1))
    bucket = np.asarray(bucket, dtype=np.int64)
    return bucket - bucket[0] if n else bucket


def iter_slices(table: pa.Table, rule: str, *, ts: str = "ts") -> Iterator[tuple[int, pa.Table]]:
    """Yield ``(slice number, rows)`` of a time-ordered ``table`` under ``rule``, skipping empty slices.

    Raises
    ------
    InvalidArgumentError
        ``ts`` is not a column, or its slice numbers decrease (the table is not in time order).
    """
    if ts not in table.column_names:
        raise InvalidArgumentError("ts", ts, f"a column of the table: one of {', '.join(table.column_names)}")
    index = chunk_index(table.column(ts), rule)
    if index.size and np.any(np.diff(index) < 0):
        raise InvalidArgumentError("table", f"<{table.num_rows} rows>", f"rows sorted by {ts!r}")
    starts = np.flatnonzero(np.r_[True, np.diff(index) != 0]) if index.size else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], index.size]
    for a, b in zip(starts.tolist(), ends.tolist()):
        yield int(index[a]), table.slice(a, b - a)
