"""Input checks shared by the store's entry points and the policies' constructors: names, keys,
numbers in a range, choices, durations. Every failure is an :class:`InvalidArgumentError` (or
:class:`InvalidNameError`) naming the argument, the value and what would be valid.

The engine keeps its own checks of kernel inputs (``engine/_validate.py``): it imports nothing
of ours and raises its own ``EngineInputError``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store.core.errors import InvalidArgumentError, InvalidFilterError, InvalidNameError

__all__ = [
    "MAX_BATCH",
    "NAME_PATTERN",
    "as_array",
    "as_keys",
    "check_batch_size",
    "check_bool",
    "check_choice",
    "check_filter",
    "check_float",
    "check_float_or_none",
    "check_int",
    "check_int_or_none",
    "check_name",
    "check_scope",
    "check_zoned_times",
    "lance_reason",
    "parse_duration",
]

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}\Z")  # \Z: "$" would pass a final newline
#: the largest batch a read asks Lance for (its own bound)
MAX_BATCH = 2**32 - 1


def check_name(kind: str, name: object) -> str:
    """Validate a tag, score, table or training name: a letter, then letters, digits, ``_.-``.

    Example
    -------
    >>> check_name("tag", "release-1")
    'release-1'
    """
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
        raise InvalidNameError(
            kind,
            name,
            "a name of 1-128 characters: a letter, then letters, digits, '_', '.', '-' "
            "(no '..', no '/')",
        )
    return name


def as_array(value: Any, *, name: str, expected: str) -> np.ndarray:
    """``np.asarray(value)`` for user input, refusing what would not stand for the values given.

    A masked array's masked entries are refused (``np.asarray`` drops the mask, so the hidden
    values behind it would be used: the keys a caller masked out deleted, erased or scored); one
    without masked entries is read as its data. What NumPy cannot make one array of (ragged
    nested lists, a tensor that needs ``.detach()``) raises :class:`InvalidArgumentError` too.

    Example
    -------
    >>> as_array(np.ma.array([1, 2], mask=[False, True]), name="keys", expected="integer keys")
    Traceback (most recent call last):
    ...
    modyn_store.core.errors.InvalidArgumentError: invalid keys='1 masked entries': expected integer keys without masked entries
    """
    if np.ma.isMaskedArray(value):
        masked = int(np.ma.count_masked(value))
        if masked:
            raise InvalidArgumentError(name, f"{masked} masked entries", f"{expected} without masked entries")
        value = np.ma.getdata(value)
    try:
        return np.asarray(value)
    except (ValueError, TypeError, RuntimeError) as exc:  # ragged lists, tensors needing .detach()
        raise InvalidArgumentError(name, f"{type(value).__name__} NumPy cannot convert ({exc})", expected) from exc


def as_keys(keys: Any, *, name: str = "keys") -> np.ndarray:
    """Coerce user keys (list, NumPy or Arrow array) to a 1-D int64 array; reject nulls, floats
    and masked entries (see :func:`as_array`)."""
    if isinstance(keys, (pa.Array, pa.ChunkedArray)):
        if keys.null_count:
            raise InvalidArgumentError(name, f"{keys.null_count} null keys", "non-null int64 keys")
        keys = keys.to_numpy(zero_copy_only=False)
    if isinstance(keys, (int, np.integer)):
        keys = [keys]
    arr = as_array(keys, name=name, expected="a one-dimensional sequence of integer keys")
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if arr.ndim != 1:
        raise InvalidArgumentError(name, f"shape {arr.shape}", "a one-dimensional sequence of keys")
    # (by kind: NumPy counts timedelta64 as an integer type, whose unit would set the key)
    if arr.dtype.kind not in "iu":
        raise InvalidArgumentError(name, f"dtype {arr.dtype}", "integer keys (int64)")
    if np.issubdtype(arr.dtype, np.unsignedinteger) and arr.dtype.itemsize >= 8 and int(arr.max()) > (1 << 63) - 1:
        raise InvalidArgumentError(name, int(arr.max()), "keys that fit int64 (<= 2**63-1)")
    return arr.astype(np.int64, copy=False)


def check_filter(filter: object, *, name: str = "filter") -> str:
    """A user row filter checked to be one SQL expression, returned wrapped in parentheses.

    Lance pastes a filter into ``SELECT ... WHERE <filter>`` and ignores trailing clauses, so
    ``"label = 1) OR (true"`` or ``"x = 1 LIMIT 1"`` would otherwise parse. Parentheses must
    balance outside string literals and quoted identifiers; ``;``, comments and double quotes
    (which Lance reads as text, not as a column name) are refused. The wrapped result can only
    parse as a single expression.

    Example
    -------
    >>> check_filter("label = 1 OR ts > 5")
    '(label = 1 OR ts > 5)'
    """
    if not isinstance(filter, str) or not filter.strip():
        raise InvalidArgumentError(name, filter, "a non-empty SQL filter expression or None")
    depth = 0
    quote: str | None = None
    i, n = 0, len(filter)
    while i < n:
        c = filter[i]
        if quote is not None:
            if c == quote:
                if i + 1 < n and filter[i + 1] == quote:  # '' or "" escapes the quote
                    i += 1
                else:
                    quote = None
        elif c in ("'", '"', "`"):
            if c == "'" and i and filter[i - 1] in "nNbBrR" and not _word_char(filter, i - 2):
                raise InvalidFilterError(f"invalid {name} {filter!r}: {filter[i - 1:i + 1]!r} at offset {i - 1}: "
                                         f"prefixed text (N'..', B'..', R'..') is not supported; write text as 'text'")
            quote = c
            if c != "'":  # a quoted identifier
                _check_column(name, filter, filter[i + 1:].split(c, 1)[0])
            if c == '"':
                # Lance reads "x" as the text 'x', not the column x: "name" = 'a' would compare
                # two constants and silently match no row (or every row)
                raise InvalidFilterError(f"invalid {name} {filter!r}: double quotes are not allowed in a filter; "
                                         f"write a column name as `name` (in backticks) and text as 'text'")
        elif c == "_" and (i == 0 or not (filter[i - 1].isalnum() or filter[i - 1] in "_.")):
            _check_column(name, filter, re.match(r"\w+", filter[i:]).group(0))  # type: ignore[union-attr]
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                raise InvalidFilterError(f"invalid {name} {filter!r}: ')' at offset {i} closes nothing")
        elif c == "?" or (c == "$" and not _word_char(filter, i - 1)) or (
            c == ":" and not filter.startswith("::", i) and filter[i - 1 : i] != ":" and not _word_char(filter, i - 1)
        ):
            # placeholders ($1, ?, :x) and $$-quoted text parse, then abort Lance's planner
            raise InvalidFilterError(f"invalid {name} {filter!r}: {c!r} at offset {i}: placeholders ($1, ?, :name) "
                                     f"and $$-quoted text are not supported; write values as literals ('text', 42)")
        elif c == ";" or filter.startswith("--", i) or filter.startswith("/*", i):
            raise InvalidFilterError(f"invalid {name} {filter!r}: ';' and comments are not allowed in a filter")
        i += 1
    if quote is not None:
        raise InvalidFilterError(f"invalid {name} {filter!r}: unterminated {quote} quote")
    if depth:
        raise InvalidFilterError(f"invalid {name} {filter!r}: {depth} unclosed '('")
    return f"({filter})"


#: a time written in a filter: a TIMESTAMP '..' literal, a cast to TIMESTAMP or a to_timestamp* call
_TIME_IN_FILTER = re.compile(r"\bTIMESTAMP\s*'|\bAS\s+TIMESTAMP\b|::\s*TIMESTAMP\b|\bto_timestamp\w*\s*\(",
                             re.IGNORECASE)
#: an arrow_cast to a timestamp type without a zone (read, as a literal is, as the column's clock)
_NAIVE_CAST = re.compile(r"Timestamp\(\s*\w+\s*,\s*None\s*\)")
#: zones that are UTC under another name (also with ``Etc/`` before them), and zero offsets
_UTC = frozenset({"UTC", "UCT", "GMT", "GMT0", "GMT+0", "GMT-0", "Universal", "Zulu", "Greenwich", "Z"})
_ZERO_OFFSET = re.compile(r"[+-]00:?00")


def _is_utc(tz: str) -> bool:
    return tz.removeprefix("Etc/") in _UTC or _ZERO_OFFSET.fullmatch(tz) is not None


def check_zoned_times(filter: str, schema: pa.Schema | Callable[[], pa.Schema | None], *, name: str = "filter") -> None:
    """Refuse a time written in ``filter`` (``TIMESTAMP '..'``, a cast to a timestamp without a
    zone, ``to_timestamp``) where a column of ``schema`` (or of what it returns: read only when
    the filter writes a time) that the filter names holds times of a zone other than UTC (or
    UTC by another name: ``GMT``, ``Etc/UTC``, ``+00:00``). Lance reads such a time as the
    wall-clock time of the column's zone and drops an offset written in it, so
    ``ts < TIMESTAMP '2024-01-01 00:00:00'`` on an America/New_York column means 05:00 UTC, not
    the midnight UTC the filter documents.

    >>> zoned = pa.schema([("ts", pa.timestamp("s", tz="Europe/Berlin"))])
    >>> check_zoned_times("ts < DATE '2024-01-01' AND x <> 'TIMESTAMP'", zoned)  # a date is UTC's
    """
    bare = re.sub(r"'(?:[^']|'')*'", "''", filter)
    text = re.sub(r"`[^`]*`", "``", bare)  # names and text say nothing
    if not (_TIME_IN_FILTER.search(text) or _NAIVE_CAST.search(filter)):
        return
    # only the columns the filter names: a time compared with a UTC column is read as UTC even
    # where another column of the table has a zone
    named = {w.lower() for w in re.findall(r"`([^`]*)`", bare) + re.findall(r"\w+", text)}
    fields = schema() if callable(schema) else schema
    for f in fields or ():
        if (pa.types.is_timestamp(f.type) and f.type.tz is not None and not _is_utc(f.type.tz)
                and f.name.lower() in named):
            raise InvalidFilterError(
                f"invalid {name} {filter!r}: column {f.name!r} holds times in zone {f.type.tz}, where Lance reads "
                f"a time written in a filter as that zone's clock time (an offset in it is dropped), not UTC; "
                f"write the time in UTC as arrow_cast('2024-01-01 00:00:00', "
                f"'Timestamp(Microsecond, Some(\"UTC\"))')"
            )


def filter_error(filter: str, exc: Exception, on: str = "") -> InvalidFilterError:
    """The :class:`~modyn_store.core.errors.InvalidFilterError` for a filter Lance refused
    (``on``: where, e.g. ``" on table 'x'"``), with the way to write a time literal where a
    text or number was compared with a time column (``ts < '2008-01-01'`` does not convert).

    >>> str(filter_error("ts < 5", ValueError("could not convert to literal of type 'Timestamp(us)'")))
    "invalid filter 'ts < 5': could not convert to literal of type 'Timestamp(us)' (write a time as TIMESTAMP '2008-01-01 00:00:00' (in UTC))"
    """
    text = lance_reason(str(exc))
    hint = ""
    huge = _beyond_int64(filter)
    if huge is not None and "Received literal Float64" in text:
        # Lance reads an integer beyond int64 as a float, which no int64 column compares with;
        # -2**63 is one: its digits are read before the sign
        if huge == str(-(2**63)):
            why = ("Lance reads -9223372036854775808 (the smallest int64) as minus 9223372036854775808, a number "
                   "beyond int64")
            how = "write it as (-9223372036854775807 - 1)"
        else:
            why, how = f"{huge} is beyond int64", "write integers from -9223372036854775808 to 9223372036854775807"
        return InvalidFilterError(f"invalid filter {filter!r}{on}: {why}, so it is read as a float, which an "
                                  f"integer column does not compare with; {how}")
    if "literal of type 'Timestamp" in text:
        hint = " (write a time as TIMESTAMP '2008-01-01 00:00:00' (in UTC))"
    elif "literal of type 'Date" in text:
        hint = " (write a date as DATE '2008-01-01')"
    return InvalidFilterError(f"invalid filter {filter!r}{on}: {text}{hint}")


#: Lance's own row columns in its list of a table's fields (refused in a filter, see _check_column)
_ROW_FIELDS = re.compile(r"_row(?:id|addr|offset|_created_at_version|_last_updated_at_version)")


def lance_reason(text: str) -> str:
    """Lance's message with its own row columns left out of the fields it calls valid (a filter
    naming one is refused).

    >>> lance_reason("No field named x. Valid fields are key, ts, _version, _rowid, _rowaddr.")
    'No field named x. Valid fields are key, ts, _version.'
    """
    head, sep, fields = text.partition("Valid fields are ")
    if not sep:
        return text
    listed, dot, rest = fields.partition(".")
    names = [f for f in (x.strip() for x in listed.split(",")) if not _ROW_FIELDS.fullmatch(f)]
    return f"{head}{sep}{', '.join(names)}{dot}{rest}"


def _beyond_int64(filter: str) -> str | None:
    """The first whole number written in ``filter`` (outside text and quoted names) beyond
    2**63-1, with its minus sign: Lance reads such a number as a float."""
    bare = re.sub(r"`[^`]*`", "``", re.sub(r"'(?:[^']|'')*'", "''", filter))
    for m in re.finditer(r"(-\s*)?(?<![\w.])(\d+)(?![\w.])", bare):
        if int(m.group(2)) > 2**63 - 1:
            return ("-" if m.group(1) else "") + m.group(2)
    return None


def _word_char(text: str, i: int) -> bool:
    """Whether ``text[i]`` continues a name or a value (``x$``, ``st:a``, ``f(x)::int``); ``False``
    before the start."""
    return i >= 0 and (text[i].isalnum() or text[i] in "_$`)]")


def _check_column(name: str, filter: str, column: str) -> None:
    """Refuse a filter naming one of Lance's row columns (``_rowid``, ``_rowaddr``, ``_rowoffset``,
    ``_row_created_at_version``, ``_row_last_updated_at_version``): they count Lance's own rows and
    table versions, not the store's keys and versions, so a filter on them would answer about the
    storage layout (``_row_created_at_version = 3`` is not "inserted at store version 3")."""

    if column.lower().startswith("_row"):
        raise InvalidFilterError(f"invalid {name} {filter!r}: {column!r} is not a column of the store but one of "
                                 f"the storage layer's row columns, which count its own rows and versions; "
                                 f"filter on key, ts, label, your columns or _version (the store version)")


def check_batch_size(value: Any) -> int:
    """A read's ``batch_size``: an integer in ``[1, 2**32 - 1]`` (Lance's bound on a batch).

    >>> check_batch_size(4096)
    4096
    """
    return check_int("batch_size", value, 1, MAX_BATCH)


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int in ``[lo, hi]`` (bools rejected)."""
    return _check_int(name, value, lo, hi, optional=False)  # type: ignore[return-value]


def check_int_or_none(name: str, value: Any, lo: int | None = None,
                      hi: int | None = None) -> int | None:
    """``value`` as an int in ``[lo, hi]``, or ``None``."""
    return _check_int(name, value, lo, hi, optional=True)


def _check_int(name: str, value: Any, lo: int | None, hi: int | None, *,
               optional: bool) -> int | None:
    if value is None and optional:
        return None
    rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
    expected = f"an integer in {rng}" + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, int):
        if not (hasattr(value, "__index__") and not isinstance(value, bool)):
            raise InvalidArgumentError(name, value, expected)
        value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InvalidArgumentError(name, value, expected)
    return int(value)


def check_float(name: str, value: Any, lo: float | None = None, hi: float | None = None, *,
                lo_open: bool = False, hi_open: bool = False) -> float:
    """``value`` as a finite float in the interval (open or closed ends as given)."""
    return _check_float(name, value, lo, hi, lo_open, hi_open, False)  # type: ignore[return-value]


def check_float_or_none(name: str, value: Any, lo: float | None = None,
                        hi: float | None = None, *, lo_open: bool = False,
                        hi_open: bool = False) -> float | None:
    """``value`` as a finite float in the interval, or ``None``."""
    return _check_float(name, value, lo, hi, lo_open, hi_open, True)


def _check_float(name: str, value: Any, lo: float | None, hi: float | None, lo_open: bool,
                 hi_open: bool, optional: bool) -> float | None:
    if value is None and optional:
        return None
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    rng = f"{left}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{right}"
    expected = f"a finite number in {rng}" + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(name, value, expected)
    v = float(value)
    if not math.isfinite(v):
        raise InvalidArgumentError(name, value, expected)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise InvalidArgumentError(name, value, expected)
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise InvalidArgumentError(name, value, expected)
    return v


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise InvalidArgumentError(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise InvalidArgumentError(name, value, "True or False")
    return value


_UNITS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
          "d": 86400 * 10**9, "w": 7 * 86400 * 10**9}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h|d|w)\s*$")


def parse_duration(name: str, value: Any) -> float:
    """A duration: ``"90s"``, ``"15m"``, ``"1d"``, ``"2w"`` -> nanoseconds; a positive number is
    returned unchanged (in the unit of the event-time column).

    Example
    -------
    >>> parse_duration("every", "1h") == 3600 * 10**9
    True
    """
    if isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise InvalidArgumentError(
                name, value, "a positive duration like '90s', '15m', '1h', '1d', '2w' or a number"
            )
        ns = float(m.group(1)) * _UNITS[m.group(2)]
        if ns <= 0:
            raise InvalidArgumentError(name, value, "a positive duration")
        return ns
    return check_float(name, value, 0.0, lo_open=True)


def check_scope(name: str, value: Any) -> str | None:
    """A checkpoint or strategy name (a non-empty string), or ``None``."""
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidArgumentError(name, value, "a non-empty name or None")
    return value
