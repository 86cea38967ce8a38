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

import pyarrow as pa

from modyn_store.core._runcheck import digest
from modyn_store.core.errors import CorruptionError
from modyn_store.core.records import VERSIONS_SCHEMA, VersionRecord

__all__ = ["DIGEST", "SEALED_SCHEMA", "check", "consecutive", "from_micros", "micros", "sealed"]

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


def check(row: Mapping[str, Any], where: str) -> None:
    """Raise :class:`CorruptionError` if the stored ``row`` (found in ``where``) carries a
    digest its fields do not match; a row without one (an earlier release's) passes."""
    given = row.get(DIGEST)
    if given is None:
        return
    if given != _row_digest(row):
        raise CorruptionError(
            f"the record of version {row.get('_version')!r} in {where!r} does not match its digest "
            "(a field was changed after it was written); run `modyn-store verify` and restore the "
            "store from a backup"
        )


def consecutive(records: Sequence[VersionRecord], first: int, where: str) -> None:
    """Raise :class:`CorruptionError` unless ``records`` hold versions ``first, first + 1, ...``
    in order, each once (a duplicated or missing row would shift every later version)."""
    for i, r in enumerate(records):
        if r.version != first + i:
            raise CorruptionError(
                f"{where!r} holds version {r.version} where version {first + i} belongs (a duplicated, "
                "missing or renumbered record); run `modyn-store verify` and restore the store from a backup"
            )
