"""The checked records of the version log's table, kept on disk between processes.

A fresh process reads every record of the ``versions`` table and checks each against its digest
before it answers anything (:mod:`._logdigest`). Over a log of thousands of small versions that
is most of its first read (docs/PERFORMANCE.md, long version logs). The first process to read a
table in full keeps what it read, once every row passed its check, as one entry of the per-user
read cache (:mod:`._kept`): named by the table's manifest (any commit, checkpoint or merge of the
table names another entry), closed by a BLAKE2b digest (a torn or damaged entry is a miss and
the table is read). Later processes read that one file instead of opening and scanning the
table and checking the digests again.

What is kept is the rows' values as they are stored: the numbers as int64 arrays, and one JSON
text ``[[op, ...], [message, ...], [details, ...]]`` whose details are the stored texts (each a
text ``json.dumps`` wrote, so the array reads back value for value). ``verify`` reads the table
itself, never an entry, and a writer reads the table again where its process took the records
from an entry (``VersionLog._checkpointed``): what a write decides comes from the tables.

Example
-------
>>> from datetime import datetime, timezone
>>> import pyarrow as pa
>>> from modyn_store.core._logdigest import SEALED_SCHEMA, sealed
>>> from modyn_store.core.records import VersionRecord
>>> at = datetime(2024, 1, 1, tzinfo=timezone.utc)
>>> recs = [VersionRecord(1, at, "append", "first", 2, live=2, max_key=1, details={"run": [0, 2]}),
...         VersionRecord(2, at, "delete", 'a "quote"', deleted=1, live=1, max_key=1)]
>>> table = pa.Table.from_pylist([sealed(r) for r in recs], schema=SEALED_SCHEMA)
>>> decoded(encoded(table)) == recs
True
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from modyn_store.core._logdigest import records_of
from modyn_store.core._plainjson import read_json
from modyn_store.core.records import VersionRecord

__all__ = ["WHAT", "decoded", "encoded"]

#: the name of the entries (``_kept``'s ``what``); another layout gets another name
WHAT = "log-records/1"
#: the int64 columns, in the order kept
_INTS = ("_version", "time", "inserted", "deleted", "erased", "live", "max_key")


def encoded(table: pa.Table) -> tuple[np.ndarray, ...]:
    """The kept form of the rows of ``table`` (a ``versions`` table in version order whose
    every row passed its digest check): ``(numbers, text length, text)``, all int64."""
    numbers = np.concatenate([table.column(f).cast(pa.int64()).to_numpy() for f in _INTS])
    details = table.column("details").to_pylist()
    text = (
        "[" + json.dumps(table.column("op").to_pylist()) + "," + json.dumps(table.column("message").to_pylist())
        + ",[" + ",".join(details) + "]]"
    ).encode()
    padded = text + b"\0" * (-len(text) % 8)
    return numbers, np.array([len(text)], np.int64), np.frombuffer(padded, "<i8")


def decoded(arrays: Sequence[np.ndarray]) -> list[VersionRecord] | None:
    """The records of a kept entry, or ``None`` where it is not one this module wrote (then the
    table is read)."""
    if len(arrays) != 3 or arrays[1].size != 1 or arrays[0].size % len(_INTS):
        return None
    n = arrays[0].size // len(_INTS)
    length = int(arrays[1][0])
    raw = arrays[2].tobytes()
    if not 0 <= length <= len(raw) < length + 8:
        return None
    try:
        parts = read_json(raw[:length])
    except ValueError:
        return None
    if not isinstance(parts, list) or len(parts) != 3 or any(not isinstance(p, list) or len(p) != n for p in parts):
        return None
    ops, messages, details = parts
    version, when, inserted, deleted, erased, live, max_key = arrays[0].reshape(len(_INTS), n).tolist()
    return records_of((version, when, ops, messages, inserted, deleted, erased, live, max_key), details)
