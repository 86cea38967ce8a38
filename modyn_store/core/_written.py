"""Which tables the committed version log says were written, and by which version first.

A table that a committed version wrote has a manifest from then on (tables are dropped only
when the write that created them never committed). So a table the log names but whose manifest
is gone is damage, not "no such table": :meth:`Tables.open` raises :class:`CorruptionError`
for it instead of answering as if it were empty (no tags, no erasures: an erased key could be
appended again), and ``verify`` reports it.

Example
-------
>>> from datetime import datetime, timezone
>>> from modyn_store.core.records import VersionRecord
>>> t = datetime.now(timezone.utc)
>>> sorted(written_tables([VersionRecord(1, t, "append", inserted=2),
...                        VersionRecord(2, t, "tag", details={"tag": "a", "target": 1}),
...                        VersionRecord(3, t, "delete")]).items())
[('samples', 1), ('tags', 2)]
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from modyn_store.core.records import VersionRecord

__all__ = ["WrittenTables", "written_tables"]


def _tables_of(r: VersionRecord) -> list[str]:
    """The tables record ``r``'s version wrote rows to (as far as its op says)."""
    if r.op == "append":
        return ["samples"] if r.inserted else []
    # tag, untag and train as the store writes them (their details name the tag or training):
    # an extension's transaction may be named so too, and writes its own tables only
    if r.op in ("tag", "untag"):
        return ["tags"] if "tag" in r.details else []
    if r.op == "delete":
        return ["tombstones"] if r.deleted else []
    if r.op == "erase":
        return ["erasures"] if r.erased else []
    if r.op == "vacuum":
        return ["purged"] if _int(r.details.get("purged")) else []
    if r.op == "scores":
        names = r.details.get("scores")
        return [f"scores/{n}" for n in names if isinstance(n, str)] if isinstance(names, list) else []
    if r.op == "train":
        return ["trainings", "selections"] if "training_id" in r.details else []
    return []  # an extension's op: its tables are its own to check


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def written_tables(records: Iterable[VersionRecord], into: dict[str, int] | None = None) -> dict[str, int]:
    """``table -> first version that wrote it`` over ``records`` (added to ``into``)."""
    out = {} if into is None else into
    for r in records:
        for name in _tables_of(r):
            out.setdefault(name, r.version)
    return out


class WrittenTables:
    """:func:`written_tables` of a store's log, kept up to date as the log grows: called with a
    table name, the first committed version that wrote it (``None``: none did).

    ``refresh_s``: the log is read again at most this often for a lookup (an object store lists
    its log objects with a request; a table that does not exist, such as the tombstones of a
    store without deletes, is looked up on every read). :meth:`all` always reads it.

    A writer holds (:meth:`hold`) the records it read under the writer lock until its version
    committed or rolled back (:meth:`release`): no other version can commit meanwhile, so a
    lookup answers from them without reading the log again (the erasures table that a delete
    looks for in a store without erasures cost a read of the log each time)."""

    def __init__(self, read_records: Callable[[], list[VersionRecord]], refresh_s: float = 0.0) -> None:
        self._read = read_records
        self._seen = 0
        self._map: dict[str, int] = {}
        self._lock = threading.Lock()
        self._refresh_s = refresh_s
        self._read_at = -math.inf
        self._held = False

    def hold(self, records: list[VersionRecord]) -> None:
        """Answer lookups from ``records`` (every committed one, read under the writer lock)
        until :meth:`release`."""
        self._absorb(records)
        self._held = True

    def release(self) -> None:
        self._held = False

    def _update(self, fresh: bool = True) -> dict[str, int]:
        now = time.monotonic()
        if not fresh and (self._held or now - self._read_at < self._refresh_s):
            return self._map
        records = self._read()
        self._read_at = now
        return self._absorb(records)

    def _absorb(self, records: list[VersionRecord]) -> dict[str, int]:
        with self._lock:
            if len(records) < self._seen:  # (another store state: start again)
                self._seen, self._map = 0, {}
            if len(records) > self._seen:
                self._map = written_tables(records[self._seen :], dict(self._map))
                self._seen = len(records)
            return self._map

    def all(self) -> dict[str, int]:
        return dict(self._update())

    def __call__(self, name: str) -> int | None:
        if name == "versions":
            return None  # the log itself (its loss is found by the head, see _txn.check_head)
        return self._update(fresh=False).get(name)
