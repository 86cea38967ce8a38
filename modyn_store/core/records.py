"""Typed records the store returns: versions, diffs, deltas, erasure and vacuum reports."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store.core._plainjson import read_json
from modyn_store.core.errors import UnknownVersionError

__all__ = ["Delta", "Diff", "ErasureReport", "VacuumReport", "VersionRecord"]


@dataclass(frozen=True)
class VersionRecord:
    """One committed store version.

    Attributes
    ----------
    version:
        The version number (1, 2, ...; 0 is the empty store).
    time:
        Wall-clock commit time (UTC).
    op:
        ``append``, ``delete``, ``erase``, ``scores``, ``tag``, ``untag``, ``vacuum`` or an
        extension's operation (e.g. ``train``).
    message:
        Free text given by the writer.
    inserted, deleted, erased:
        Row counts the version changed.
    live:
        The number of live rows after the version.
    details:
        Operation-specific facts (score name, tag, training id ...).
    """

    version: int
    time: datetime
    op: str
    message: str = ""
    inserted: int = 0
    deleted: int = 0
    erased: int = 0
    live: int = 0
    max_key: int = -1
    details: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        return {
            "_version": self.version,
            "time": self.time,
            "op": self.op,
            "message": self.message,
            "inserted": self.inserted,
            "deleted": self.deleted,
            "erased": self.erased,
            "live": self.live,
            "max_key": self.max_key,
            "details": json.dumps(self.details, sort_keys=True),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> VersionRecord:
        return cls(
            version=int(row["_version"]),
            time=row["time"],
            op=str(row["op"]),
            message=str(row["message"]),
            inserted=int(row["inserted"]),
            deleted=int(row["deleted"]),
            erased=int(row["erased"]),
            live=int(row["live"]),
            max_key=int(row["max_key"]),
            details=read_json(row["details"]),
        )


VERSIONS_SCHEMA = pa.schema(
    [
        ("_version", pa.int64()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("op", pa.string()),
        ("message", pa.string()),
        ("inserted", pa.int64()),
        ("deleted", pa.int64()),
        ("erased", pa.int64()),
        ("live", pa.int64()),
        ("max_key", pa.int64()),
        ("details", pa.string()),
    ]
)


def version_at_time(records: list[VersionRecord], when: datetime) -> int:
    """The latest version committed, together with every version before it, at or before
    ``when`` (time-zone aware): the versions up to the first whose commit time, or an earlier
    version's, is after ``when``. Commit times are the writers' wall clocks; where one went back
    between two commits, their running maximum is what counts, so the answer never holds a
    version committed after ``when`` and moves forward with ``when``.

    >>> from datetime import datetime, timezone
    >>> at = lambda h: datetime(2024, 1, 1, h, tzinfo=timezone.utc)
    >>> log = [VersionRecord(1, at(10), "append"), VersionRecord(2, at(20), "append"),
    ...        VersionRecord(3, at(15), "append")]  # the clock went back before version 3
    >>> [version_at_time(log, at(h)) for h in (10, 17, 19, 20, 23)]
    [1, 1, 1, 3, 3]

    Raises
    ------
    UnknownVersionError
        ``when`` is before the first commit (or there is none).
    """
    found = 0
    for r in records:  # oldest first
        if r.time > when:
            break
        found = r.version
    if not found:
        first = f" (version {records[0].version} was committed at {records[0].time.isoformat()})" if records else ""
        raise UnknownVersionError(f"no version was committed at or before {when.isoformat()}{first}")
    return found


@dataclass(frozen=True, eq=False)
class Diff:
    """Keys that entered (``inserted``) and left (``deleted``) the live set between two versions."""

    start: int
    end: int
    inserted: np.ndarray
    deleted: np.ndarray

    def __repr__(self) -> str:
        return (
            f"Diff({self.start}->{self.end}: +{self.inserted.size} inserted, "
            f"-{self.deleted.size} deleted)"
        )


@dataclass(frozen=True, eq=False)
class Delta:
    """What versions ``(start, end]`` changed, in the form triggers consume.

    ``inserted`` holds the inserted rows that still exist (erased rows are gone), with the
    columns asked for plus ``key``, ``ts``, ``label`` (if the store has labels) and ``version``,
    sorted by (version, ts, key). ``deleted`` (keys soft-deleted in the range and not erased
    since) and ``erased`` (keys erased in the range) are sorted key arrays.
    """

    start: int
    end: int
    inserted: pa.Table
    deleted: np.ndarray
    erased: np.ndarray

    def __len__(self) -> int:
        return int(self.inserted.num_rows)

    def __repr__(self) -> str:
        return (
            f"Delta({self.start}->{self.end}: {self.inserted.num_rows} inserted, "
            f"{self.deleted.size} deleted, {self.erased.size} erased)"
        )


@dataclass(frozen=True, eq=False)
class ErasureReport:
    """The result of :meth:`Store.erase`.

    ``version`` is the erase's new version, ``None`` when nothing was erased (every key
    skipped with ``missing="ignore"``: no version was committed); ``trainings`` names the past
    trainings whose train sets held an erased key; ``caches_removed`` counts the
    materialization caches that were deleted; ``descendants`` names the past trainings
    fine-tuned from one in ``trainings`` (directly or through others) that are not in it.
    """

    version: int | None
    keys: np.ndarray
    reason: str
    trainings: tuple[str, ...] = ()
    caches_removed: int = 0
    descendants: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (
            f"ErasureReport(version={self.version}, keys={self.keys.size}, "
            f"trainings={list(self.trainings)}, descendants={list(self.descendants)}, "
            f"caches_removed={self.caches_removed})"
        )


@dataclass(frozen=True, eq=False)
class VacuumReport:
    """The result of :meth:`Store.vacuum`: which soft-deleted rows are (or would be) purged,
    and ``trainings``: the recorded trainings whose train set holds one of them (``reproduce``
    refuses them once the rows are purged; tag their data versions to keep them).

    ``version`` is the vacuum's new version, ``None`` for a dry run or when nothing was purged
    (no version was committed)."""

    dry_run: bool
    keys: np.ndarray
    version: int | None
    keep_versions: int
    trainings: tuple[str, ...] = ()

    def __repr__(self) -> str:
        what = "would purge" if self.dry_run else "purged"
        return (f"VacuumReport({what} {self.keys.size} rows, keep_versions={self.keep_versions}, "
                f"trainings={list(self.trainings)})")
