"""Normalising append input: canonical ``key``/``ts``/``label`` columns, schema checks, keys."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lance.schema import LanceSchema

from modyn_store.core.errors import DuplicateKeyError, InvalidArgumentError, SchemaMismatchError

__all__ = ["RESERVED", "KeyTracker", "Prepared", "check_new", "check_unique", "empty_columns", "prepare"]

RESERVED = ("_version", "_rowid", "_rowaddr")
INT64_MAX = (1 << 63) - 1
ROLE_COLUMNS = ("key", "ts", "label")


class Prepared:
    """Append input as a stream of canonical record batches plus the target schema."""

    def __init__(self, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> None:
        self.schema = schema
        self.batches = batches


def _to_arrow(data: Any) -> pa.Table | pa.RecordBatch | pa.RecordBatchReader:
    """``data`` as Arrow: a table, batch or reader as it is, a DataFrame or dict of columns as a table."""
    if isinstance(data, (pa.RecordBatchReader, pa.Table, pa.RecordBatch)):
        return data
    try:
        if type(data).__module__.startswith("pandas") and type(data).__name__ == "DataFrame":
            return pa.Table.from_pandas(data, preserve_index=False)
        if isinstance(data, Mapping):
            return pa.table(dict(data))
    except (pa.ArrowException, TypeError, ValueError) as exc:  # ragged columns, mixed objects
        raise SchemaMismatchError(f"the data cannot be read as Arrow columns: {exc}") from exc
    raise InvalidArgumentError(
        "data",
        type(data).__name__,
        "a pyarrow Table, RecordBatch or RecordBatchReader, a pandas DataFrame or a dict of columns",
    )


def _to_reader(data: Any) -> pa.RecordBatchReader:
    data = _to_arrow(data)
    if isinstance(data, pa.RecordBatchReader):
        return data
    if isinstance(data, pa.Table):
        return data.to_reader()
    return pa.Table.from_batches([data]).to_reader()


def _roles(schema: pa.Schema, key: str | None, ts: str | None, label: str | None) -> dict[str, str | None]:
    """Map canonical role -> source column (None = absent / assigned)."""
    names = schema.names
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SchemaMismatchError(f"the data names columns {twice} more than once")
    for name in names:
        if not name or "." in name or "`" in name:
            # Lance quotes each column it reads in backticks and has no escape for one inside
            raise SchemaMismatchError(
                f"column name {name!r}: names must be non-empty and contain no '.' (a nested field's path) "
                f"and no '`' (every later read of the column would fail)"
            )
    chosen: dict[str, str | None] = {}
    for role, given in (("key", key), ("ts", ts), ("label", label)):
        if given is not None:
            if given not in names:
                raise SchemaMismatchError(
                    f"{role}={given!r} names no column of the data; columns are {names}"
                )
            chosen[role] = given
        else:
            chosen[role] = role if role in names else None
    for role, source in chosen.items():
        if role in names and source != role:
            raise SchemaMismatchError(
                f"the data has a column {role!r} but {role}={source!r} was chosen; rename one of them"
            )
    if chosen["ts"] is None:
        raise SchemaMismatchError(
            f"no event-time column: pass ts='<column>' (columns are {names}) or add a 'ts' column"
        )
    for name in names:
        if name in RESERVED or name.startswith("_"):
            raise SchemaMismatchError(f"column {name!r} is reserved: names starting with '_' are internal")
    return chosen


def _canonical_schema(schema: pa.Schema, roles: dict[str, str | None]) -> pa.Schema:
    fields = []
    key_src = roles["key"]
    if key_src is not None:
        t = schema.field(key_src).type
        if not pa.types.is_integer(t):
            raise SchemaMismatchError(f"key column {key_src!r} has type {t}; keys must be integers")
    fields.append(pa.field("key", pa.int64(), nullable=False))
    ts_type = schema.field(roles["ts"]).type
    if not (pa.types.is_integer(ts_type) or pa.types.is_floating(ts_type) or pa.types.is_timestamp(ts_type) or pa.types.is_date(ts_type)):
        raise SchemaMismatchError(
            f"event-time column {roles['ts']!r} has type {ts_type}; expected an integer, float, date or timestamp"
        )
    fields.append(pa.field("ts", ts_type))
    if roles["label"] is not None:
        fields.append(pa.field("label", _plain(schema.field(roles["label"]).type)))
    used = {v for v in roles.values() if v is not None}
    for f in schema:
        if f.name not in used:
            fields.append(f.with_type(_plain(f.type)))
    return pa.schema(fields)


def _as_stored(target: pa.Schema, stored: pa.Schema) -> pa.Schema:
    """``target`` with the dictionary types of a store made by an earlier release, where its
    values are the same type: such a store holds a dictionary column, and later values (plain,
    or dictionary-encoded: :func:`_plain` made them plain) are encoded into it."""
    fields = []
    for f in target:
        want = stored.field(f.name).type if f.name in stored.names else None
        if want is not None and pa.types.is_dictionary(want) and want.value_type.equals(f.type):
            f = f.with_type(want)
        fields.append(f)
    return pa.schema(fields)


def _plain(t: pa.DataType) -> pa.DataType:
    """A dictionary-encoded column's value type (pandas' categoricals): the store holds the
    values. Its index width was chosen for the first file's categories, and a table rewrite
    (compaction, an erase's purge) that merges the dictionaries of later appends would overflow
    it; the values also compare with a plain column of a later file."""
    return t.value_type if pa.types.is_dictionary(t) else t


def _untyped(t: pa.DataType) -> bool:
    """Whether ``t`` is ``null`` or holds ``null`` values (``list<null>``, a struct field of type null ...)."""
    if pa.types.is_null(t):
        return True
    if pa.types.is_dictionary(t):
        return _untyped(t.value_type)
    return any(_untyped(t.field(i).type) for i in range(t.num_fields))


def empty_columns(schema: pa.Schema, skip: Collection[str] = ()) -> list[str]:
    """The columns of ``schema`` (but ``skip``) of type ``null``, or of a nested type with
    ``null`` values (``list<null>``: lists that are all empty or hold only nulls, a struct field
    of type null): no value in any row, so of no known type. A new store would hold such a
    column as it is for good and refuse every later append with values in it; the command line's
    import refuses them too.

    >>> empty_columns(pa.schema([("ts", pa.int64()), ("x", pa.null()), ("y", pa.list_(pa.null()))]))
    ['x', 'y']
    """
    return [f.name for f in schema if _untyped(f.type) and f.name not in skip]


def _check_storable(schema: pa.Schema) -> None:
    """Refuse column types Lance cannot store (unions, month-day-nano intervals, run-end
    encoding ...) and columns without a type (:func:`empty_columns`) before a first append
    writes anything."""
    empty = empty_columns(schema)
    if empty:
        t = schema.field(empty[0]).type
        raise SchemaMismatchError(
            f"column {empty[0]!r} has type {t}: {'it' if pa.types.is_null(t) else 'its part of type null'} has no "
            "value in any row, so its type is unknown; a new store would hold it as empty for good and refuse every "
            "later append with values in it. Leave the column out, or give it a type (e.g. pa.nulls(n, pa.float64()) "
            "for a column of missing numbers, pa.array(rows, pa.list_(pa.float32())) for lists that are all empty)")
    for f in schema:
        try:
            LanceSchema.from_pyarrow(pa.schema([f]))
        except ValueError as exc:
            raise SchemaMismatchError(f"column {f.name!r} has type {f.type}, which the store cannot hold ({exc})") from exc


def _compare(expected: pa.Schema, got: pa.Schema) -> None:
    exp = {f.name: f.type for f in expected}
    have = {f.name: f.type for f in got}
    missing = sorted(set(exp) - set(have))
    extra = sorted(set(have) - set(exp))
    changed = sorted(n for n in set(exp) & set(have) if not exp[n].equals(have[n]))
    if missing or extra or changed:
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if extra:
            parts.append(f"unexpected columns {extra}")
        for n in changed:
            parts.append(f"column {n!r} is {have[n]}, the store has {exp[n]}")
        raise SchemaMismatchError("appended data does not match the store's schema: " + "; ".join(parts))


def check_new(data: Any, *, key: str | None, ts: str | None, label: str | None) -> Any:
    """``data`` as Arrow (no row of a reader read; a DataFrame or dict converted once, for
    :func:`prepare` to take), its schema checked as :func:`prepare` checks the first append of a
    new store: a refusal before any writer lock is taken or file written."""
    arrow = _to_arrow(data)
    _check_storable(_canonical_schema(arrow.schema, _roles(arrow.schema, key, ts, label)))
    return arrow


def prepare(
    data: Any,
    *,
    key: str | None,
    ts: str | None,
    label: str | None,
    store_schema: pa.Schema | None,
    next_key: int,
    stored_values: Callable[[str], pa.ChunkedArray | None] | None = None,
) -> Prepared:
    """Check the input's schema and return canonical batches (keys assigned where absent).

    Raises before any row is produced if the schema is wrong; batch-level problems (null or
    duplicate keys, null event times) raise while iterating.
    """
    reader = _to_reader(data)
    roles = _roles(reader.schema, key, ts, label)
    target = _canonical_schema(reader.schema, roles)
    if store_schema is not None:
        _compare(store_schema, _as_stored(target, store_schema))
        target = pa.schema([store_schema.field(n) for n in store_schema.names])
    else:
        _check_storable(target)
    room = _DictionaryRoom(target, stored_values) if store_schema is not None else None
    return Prepared(target, _batches(reader, roles, target, next_key, room))


class _DictionaryRoom:
    """The values of a store's narrow dictionary columns (int8/int16 indices: stores of an
    earlier release, see :func:`_as_stored`) with those appended so far: a table rewrite merges
    every fragment's dictionary, so the column may never hold more values than its indices
    number, across appends, or every later read of it fails."""

    def __init__(self, target: pa.Schema, stored_values: Callable[[str], pa.ChunkedArray | None] | None) -> None:
        self.values: dict[str, set[Any]] = {}
        self.room: dict[str, int] = {}
        for f in target:
            t = f.type
            if pa.types.is_dictionary(t) and t.index_type.bit_width < 32:
                self.room[f.name] = 2 ** (t.index_type.bit_width - (0 if pa.types.is_unsigned_integer(t.index_type)
                                                                      else 1))
                col = stored_values(f.name) if stored_values is not None else None
                self.values[f.name] = set() if col is None else _distinct(col)

    def add(self, name: str, col: pa.Array) -> None:
        if name not in self.room:
            return
        seen = self.values[name]
        seen |= _distinct(col)
        if len(seen) > self.room[name]:
            raise SchemaMismatchError(
                f"column {name!r} holds dictionary-encoded values with {self.room[name]} codes at most (a store "
                f"made by an earlier release), and this append would bring it to {len(seen)} distinct values, "
                "which no later rewrite of the table could hold: export the store and import it into a new one, "
                "which holds the values themselves")


def _distinct(col: pa.Array | pa.ChunkedArray) -> set[Any]:
    """The distinct non-null values of a (dictionary-encoded) column, decoded."""
    t = col.type
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    out: set[Any] = set()
    for ch in chunks:
        plain = ch.cast(t.value_type) if pa.types.is_dictionary(t) else ch
        out.update(v for v in pc.unique(plain).to_pylist() if v is not None)
    return out


def _batches(
    reader: pa.RecordBatchReader, roles: dict[str, str | None], target: pa.Schema, next_key: int,
    room: _DictionaryRoom | None = None,
) -> Iterator[pa.RecordBatch]:
    assigned = next_key
    for batch in reader:
        if batch.num_rows == 0:
            continue
        cols: dict[str, pa.Array] = {}
        if roles["key"] is None:
            if assigned + batch.num_rows - 1 > INT64_MAX:
                raise InvalidArgumentError(
                    "key",
                    f"automatic keys {assigned}..{assigned + batch.num_rows - 1}",
                    f"automatic keys up to 2**63-1 = {INT64_MAX}: they are exhausted, pass unused keys "
                    "explicitly (key='<column>')",
                )
            cols["key"] = pa.array(np.arange(assigned, assigned + batch.num_rows, dtype=np.int64))
            assigned += batch.num_rows
        else:
            k = batch.column(roles["key"])
            if k.null_count:
                raise InvalidArgumentError("key", f"{k.null_count} null keys", "non-null integer keys")
            if pa.types.is_unsigned_integer(k.type) and len(k):
                top = int(pc.max(k).as_py())
                if top > INT64_MAX:
                    raise InvalidArgumentError("key", top, f"keys that fit int64 (<= {INT64_MAX})")
            cols["key"] = k.cast(pa.int64())
        t = batch.column(roles["ts"])
        if t.null_count:
            raise InvalidArgumentError("ts", f"{t.null_count} null event times", "non-null event times")
        if pa.types.is_uint64(t.type) and len(t) and pc.max(t).as_py() > INT64_MAX:
            # readers of event times take them as int64, where such a time turns negative
            raise InvalidArgumentError("ts", pc.max(t).as_py(), f"event times that fit int64 (<= {INT64_MAX})")
        if pa.types.is_floating(t.type):
            finite = np.isfinite(t.to_numpy(zero_copy_only=False))
            if not finite.all():
                raise InvalidArgumentError(
                    "ts", f"{int((~finite).sum())} NaN or infinite event times", "finite event times"
                )
        cols["ts"] = t
        if roles["label"] is not None:
            cols["label"] = batch.column(roles["label"])
        used = {v for v in roles.values() if v is not None}
        for name in batch.schema.names:
            if name not in used:
                cols[name] = batch.column(name)
        arrays = [_cast(cols[f.name], f) for f in target]
        if room is not None:
            for f, col in zip(target, arrays):
                room.add(f.name, col)
        yield pa.RecordBatch.from_arrays(arrays, schema=target)


def _cast(col: pa.Array, field: pa.Field) -> pa.Array:
    """``col`` as the stored ``field``'s type; a value that does not fit (text beyond a
    dictionary column's index width, in a store made by an earlier release) is a
    :class:`SchemaMismatchError` naming the column."""
    if col.type.equals(field.type):
        return col
    try:
        return col.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaMismatchError(f"column {field.name!r} ({col.type}) does not fit the store's type "
                                  f"{field.type}: {exc}") from None


def check_unique(keys: np.ndarray) -> np.ndarray:
    """Sorted copy of ``keys``; raises :class:`DuplicateKeyError` on a repeated key."""
    if keys.size > 1 and np.all(keys[1:] > keys[:-1]):
        return keys
    s = np.sort(keys, kind="stable")
    if s.size > 1:
        dup = s[1:][s[1:] == s[:-1]]
        if dup.size:
            raise DuplicateKeyError(
                f"{dup.size} duplicate keys within the appended data, e.g. {np.unique(dup)[:5].tolist()}"
            )
    return s


class KeyTracker:
    """Follows the keys of an append: their count, range and whether they stay increasing.

    Time-ordered ingest usually appends increasing keys; then uniqueness within the append
    is proven batch by batch and only the range is needed to check against the store. With
    ``keep=False`` (a streamed append) no key is held, so memory does not grow with the rows;
    :meth:`sorted_unique` then needs the keys from elsewhere (the rows written).
    """

    def __init__(self, *, keep: bool = True) -> None:
        self.keep = keep
        self.parts: list[np.ndarray] = []
        self.increasing = True
        self.count = 0
        self.first = 0
        self.last = 0
        self.low = 0
        self.high = 0

    def add(self, keys: np.ndarray) -> None:
        if keys.size == 0:
            return
        was_increasing = self.increasing
        if self.increasing and (
            (self.count and keys[0] <= self.last) or (keys.size > 1 and not bool((keys[1:] > keys[:-1]).all()))
        ):
            self.increasing = False
        if self.count == 0:
            self.first = int(keys[0])
        if not self.increasing:  # the range needs a look at every key from here on
            lo, hi = int(keys.min()), int(keys.max())
            if self.count:
                if was_increasing:
                    self.low, self.high = self.first, self.last
                lo, hi = min(lo, self.low), max(hi, self.high)
            self.low, self.high = lo, hi
        self.last = int(keys[-1])
        self.count += int(keys.size)
        if self.keep:
            self.parts.append(keys)

    def sorted_unique(self, keys: np.ndarray | None = None) -> np.ndarray:
        """All keys (``keys``: the appended keys read back, for a tracker that keeps none),
        sorted; raises :class:`DuplicateKeyError` on a repeated key."""
        if keys is not None:
            return check_unique(keys)  # read back in storage order: sorted where they increased
        keys = np.concatenate(self.parts) if self.parts else np.empty(0, np.int64)
        return keys if self.increasing else check_unique(keys)

    @property
    def lowest(self) -> int:
        return self.first if self.increasing else self.low

    @property
    def highest(self) -> int:
        return self.last if self.increasing else self.high
