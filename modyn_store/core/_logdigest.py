"""Digests of the version log's records: a changed field is an error, never an answer.

Each record a writer stores (its object ``_log/<version>.json`` and, after a checkpoint, its
row of the ``versions`` table) carries ``digest``: the :func:`~modyn_store.core._runcheck.digest`
of its fields as stored (the time in microseconds since the epoch, ``details`` as its JSON
text). A digit changed by bit rot or a bad copy still parses, so without it a changed commit
time would move ``as_of(datetime)`` to another version, and a changed count or operation would
be trusted; a record whose digest does not match raises
:class:`~modyn_store.core.errors.CorruptionError` naming its version and where it is stored.

Records of earlier releases have no digest (objects without the key, rows whose ``digest`` is
null) and are read as before. Earlier releases ignore the key and the column (they read
fields by name), and append rows without it (Lance fills the column with nulls).

Example
-------
>>> from datetime import datetime, timezone
>>> from modyn_store.core.records import VersionRecord
>>> row = sealed(VersionRecord(1, datetime(2024, 1, 1, tzinfo=timezone.utc), "append", live=3))
>>> check(row, "example")
>>> row["live"] = 4
>>> check(row, "example")
Traceback (most recent call last):
...
modyn_store.core.errors.CorruptionError: the record of version 1 in 'example' does not match its digest (a field was changed after it was written); run `modyn-store verify` and restore the store from a backup
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store.core._plainjson import read_json
from modyn_store.core._runcheck import digest
from modyn_store.core.errors import CorruptionError
from modyn_store.core.records import VERSIONS_SCHEMA, VersionRecord

__all__ = [
    "DIGEST", "SEALED_SCHEMA", "check", "consecutive", "from_micros", "in_order", "micros", "plain_table",
    "RECORD_FIELDS", "records_of", "sealed", "table_records",
]

#: the key (record objects) and column (``versions`` table) of a record's digest
DIGEST = "digest"
#: the ``versions`` table's schema as this release writes it
SEALED_SCHEMA = VERSIONS_SCHEMA.append(pa.field(DIGEST, pa.string()))
_FIELDS = tuple(VERSIONS_SCHEMA.names)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICRO = timedelta(microseconds=1)


def micros(when: datetime) -> int:
    """``when`` as stored in a record object: microseconds since the epoch."""
    return (when - _EPOCH) // _MICRO


def from_micros(value: int) -> datetime:
    """The time a record object stores as ``value`` microseconds since the epoch (UTC)."""
    return _EPOCH + int(value) * _MICRO


def _row_digest(row: Mapping[str, Any]) -> str:
    """The digest of a stored row's fields (``time`` as a datetime or in microseconds)."""
    values = [row.get(k) for k in _FIELDS]
    when = row.get("time")
    if isinstance(when, datetime):
        values[_FIELDS.index("time")] = micros(when)
    return digest(json.dumps(values).encode())


def sealed(record: VersionRecord, *, time_as_micros: bool = False) -> dict[str, Any]:
    """``record``'s stored row with its digest (``time_as_micros``: the form of an object)."""
    row = record.to_row()
    if time_as_micros:
        row["time"] = micros(record.time)
    row[DIGEST] = _row_digest(row)
    return row


def _mismatch(version: Any, where: str) -> CorruptionError:
    return CorruptionError(
        f"the record of version {version!r} in {where!r} does not match its digest "
        "(a field was changed after it was written); run `modyn-store verify` and restore the "
        "store from a backup"
    )


def check(row: Mapping[str, Any], where: str) -> None:
    """Raise :class:`CorruptionError` if the stored ``row`` (found in ``where``) carries a
    digest its fields do not match; a row without one (an earlier release's) passes."""
    given = row.get(DIGEST)
    if given is None:
        return
    if given != _row_digest(row):
        raise _mismatch(row.get("_version"), where)


def _unreadable(where: str, exc: Exception) -> CorruptionError:
    return CorruptionError(f"a record in {where!r} is unreadable ({exc}); run `modyn-store verify`")


def table_records(table: pa.Table, where: str) -> list[VersionRecord]:
    """The records of rows of the ``versions`` table (found in ``where``), by version, each
    checked against its digest as :func:`check` checks it.

    A table of this release's types without nulls (every table this and earlier releases
    wrote) is read column by column, and each digest is checked on the text ``json.dumps``
    gives the row's values, formatted directly (no dict or list per row: the first read of a
    long log in a process, docs/PERFORMANCE.md). Any other table is read row by row. A row that
    is not a record raises :class:`CorruptionError`.
    """
    table = in_order(table)
    try:
        if plain_table(table):
            return _columns(table, where)
        rows = table.to_pylist()
        for r in rows:
            check(r, where)
        return [VersionRecord.from_row(r) for r in rows]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _unreadable(where, exc) from exc


def in_order(table: pa.Table) -> pa.Table:
    """``table`` sorted by ``_version`` (as it is: the table is written in version order)."""
    version = table.column("_version")
    if version.null_count == 0 and version.type == pa.int64():
        v = version.to_numpy()
        if v.size < 2 or bool(np.all(v[1:] > v[:-1])):
            return table
    return table.sort_by("_version")


def plain_table(table: pa.Table) -> bool:
    """Whether ``table`` has this release's column types and no nulls but (maybe) digests."""
    for f in VERSIONS_SCHEMA:
        i = table.schema.get_field_index(f.name)
        if i < 0 or table.schema.field(i).type != f.type or table.column(i).null_count:
            return False
    i = table.schema.get_field_index(DIGEST)
    return i < 0 or table.schema.field(i).type == pa.string()


def _columns(table: pa.Table, where: str) -> list[VersionRecord]:
    n = table.num_rows
    cols = [
        table.column(f).cast(pa.int64()).to_pylist() if f == "time" else table.column(f).to_pylist()
        for f in _FIELDS
    ]
    given = table.column(DIGEST).to_pylist() if DIGEST in table.schema.names else [None] * n
    text = json.encoder.encode_basestring_ascii  # (what ``json.dumps`` writes strings with)
    for v, t, op, msg, ins, dele, era, live, mk, det, g in zip(*cols, given):
        # json.dumps([v, t, op, ...]) without building the list: ints as repr, strings as JSON
        if g is not None and g != digest(
            f"[{v}, {t}, {text(op)}, {text(msg)}, {ins}, {dele}, {era}, {live}, {mk}, {text(det)}]".encode()
        ):
            raise _mismatch(v, where)
    dets = cols[-1]
    if None not in given:
        # every details text is one that json.dumps wrote (its digest says so): as an array
        # they read as one text, value for value
        details = read_json("[" + ",".join(dets) + "]")
        if len(details) != n:
            raise ValueError(f"{n} details texts read as {len(details)} values")
    else:  # an earlier release's rows: one text at a time, so a damaged one fails alone
        details = [read_json(d) for d in dets]
    return records_of(cols[:-1], details)


#: the fields of a :class:`VersionRecord`, in order: :func:`records_of` fills them directly
RECORD_FIELDS = ("version", "time", "op", "message", "inserted", "deleted", "erased", "live", "max_key", "details")


def records_of(fields: Sequence[list[Any]], details: list[Any]) -> list[VersionRecord]:
    """The records of the ``versions`` table's fields given as one list each, in the table's
    order from ``_version`` to ``max_key`` (``time`` in microseconds), and their parsed details.

    Each record's attributes are set as one dictionary (what the frozen dataclass's
    ``__init__`` would set, one ``object.__setattr__`` per field): a fresh process makes one
    record per version of the log, thousands before its first answer."""
    new, put = object.__new__, object.__setattr__
    out: list[VersionRecord] = []
    for v, t, op, msg, ins, dele, era, live, mk, det in zip(*fields, details):
        record = new(VersionRecord)
        put(record, "__dict__", {"version": v, "time": from_micros(t), "op": op, "message": msg,
                                 "inserted": ins, "deleted": dele, "erased": era, "live": live, "max_key": mk,
                                 "details": det})
        out.append(record)
    return out


def consecutive(records: Sequence[VersionRecord], first: int, where: str) -> None:
    """Raise :class:`CorruptionError` unless ``records`` hold versions ``first, first + 1, ...``
    in order, each once (a duplicated or missing row would shift every later version)."""
    for i, r in enumerate(records):
        if r.version != first + i:
            raise CorruptionError(
                f"{where!r} holds version {r.version} where version {first + i} belongs (a duplicated, "
                "missing or renumbered record); run `modyn-store verify` and restore the store from a backup"
            )
