"""``verify``'s checks of the samples table against the log, in bounded memory.

One scan of ``key`` and ``_version`` in batches of :data:`SCAN_ROWS` rows gathers, per
version, the number of rows each version inserted and their key checksum (the sum modulo
2**64 of a per-key mix, see :mod:`~modyn_store.core.integrity`: additive, so it is summed
batch by batch), and the same for the rows that stop being live at each version (their key
was tombstoned then, or erased). The live count and checksum of every version are then
prefix sums of these, plus the purged keys live at it, with no version's key set ever made:
memory is one batch, a few arrays of one entry per version, and the dead keys (tombstones
and erasures, which every read of the store holds too). It is exactly what a snapshot's key
scan finds: a row is live at ``v`` when its version is at most ``v`` and its key is not
erased nor tombstoned at or before ``v`` (tombstones count from the first delete on).

Keys are distinct when the scan meets them strictly increasing (keys assigned in order); else
a second scan sorts them out of core (:func:`~modyn_store.core._keyruns.write_sorted`, in
runs of :data:`SORT_ROWS` rows, into a temporary folder) and compares neighbours.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np

from engine._search import sorted_unique
from modyn_store.core import integrity
from modyn_store.core._failures import READ_ATTEMPTS, READ_ERRORS
from modyn_store.core._keyruns import write_sorted
from modyn_store.core._keyscan import increasing

if TYPE_CHECKING:
    from modyn_store.core.records import VersionRecord
    from modyn_store.core.store import Store

__all__ = [
    "SCAN_ROWS", "SORT_ROWS", "DeadKeys", "SampleTally", "dead_keys", "distinct_keys", "live_by_version", "tally",
]

#: rows per batch of the scans (two int64 columns: 1 MiB a batch)
SCAN_ROWS = 1 << 16
#: rows sorted in memory at once when the keys must be sorted to find a repeated one (16
#: bytes a row, plus the sort's own arrays: about 100 MB)
SORT_ROWS = 1 << 21
#: keys read at once from the sorted file when comparing neighbours
_READ_ROWS = 1 << 20
_NEVER = np.iinfo(np.int64).max


@dataclass
class SampleTally:
    """What one scan of the samples found, for versions ``0 .. committed`` (index = version;
    rows of version 0 or below are counted at 0)."""

    committed: int
    #: rows above ``committed`` and the largest version of any row (0 if none)
    above: int
    top: int
    #: rows of each version, and their keys' checksum
    inserted: np.ndarray
    inserted_sum: np.ndarray
    #: rows that stop being live at each version (or were never live, counted at their own)
    gone: np.ndarray
    gone_sum: np.ndarray
    #: whether the keys of versions up to ``committed`` came strictly increasing (so distinct)
    ordered: bool


@dataclass(frozen=True)
class DeadKeys:
    """The keys that stop being live, as a snapshot's key scan drops them."""

    #: sorted distinct keys, and the first version each is dead at (0: erased, dead at every one)
    keys: np.ndarray
    at: np.ndarray
    #: the checksum of the keys tombstoned at or before each version ``0 .. committed``
    tombstoned: np.ndarray

    @classmethod
    def none(cls, committed: int) -> DeadKeys:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.zeros(committed + 1, np.uint64))


def dead_keys(store: Store, committed: int, records: Sequence[VersionRecord]) -> DeadKeys:
    """The tombstoned and erased keys of versions up to ``committed`` (tombstones count from
    the first delete on: a snapshot reads none before it)."""
    first_delete = next((r.version for r in records[:committed] if r.op == "delete" or r.deleted), None)
    tomb_sum = np.zeros(committed + 1, np.uint64)
    parts_k: list[np.ndarray] = []
    parts_v: list[np.ndarray] = []
    if first_delete is not None:
        t = store._tables.scan("tombstones", ["key", "_version"], f"_version <= {committed}")
        if t is not None and t.num_rows:
            tk = t.column("key").to_numpy().astype(np.int64, copy=False)
            tv = t.column("_version").to_numpy().astype(np.int64, copy=False)
            # a snapshot reads no tombstone before the first delete: they count from it on
            at = np.maximum(tv, first_delete)
            np.add.at(tomb_sum, np.clip(at, 0, committed), integrity.key_mixes(tk))
            parts_k.append(tk)
            parts_v.append(at)
    erased = store._erased_keys(committed)
    if erased.size:
        parts_k.append(erased)
        parts_v.append(np.zeros(erased.size, np.int64))
    tombstoned = np.cumsum(tomb_sum, dtype=np.uint64)
    if not parts_k:
        return DeadKeys(np.empty(0, np.int64), np.empty(0, np.int64), tombstoned)
    k, v = np.concatenate(parts_k), np.concatenate(parts_v)
    order = np.lexsort((v, k))
    k, v = k[order], v[order]
    first = np.ones(k.size, bool)
    first[1:] = k[1:] != k[:-1]
    return DeadKeys(k[first], v[first], tombstoned)


def _batches(ds: Any, columns: list[str], filter: str | None = None) -> Iterator[tuple[np.ndarray, ...]]:
    for batch in ds.to_batches(columns=columns, filter=filter, batch_size=SCAN_ROWS):
        if batch.num_rows:
            yield tuple(batch.column(i).to_numpy().astype(np.int64, copy=False) for i in range(len(columns)))


def _scan(ds: Any, committed: int, dead: np.ndarray, dead_at: np.ndarray) -> SampleTally:
    n = committed + 1
    out = SampleTally(committed, 0, 0, np.zeros(n, np.int64), np.zeros(n, np.uint64), np.zeros(n, np.int64),
                      np.zeros(n, np.uint64), True)
    last: int | None = None
    for keys, vers in _batches(ds, ["key", "_version"]):
        out.top = max(out.top, int(vers.max()))
        over = vers > committed
        if over.any():
            out.above += int(over.sum())
            keys, vers = keys[~over], vers[~over]
            if not keys.size:
                continue
        if out.ordered and ((last is not None and int(keys[0]) <= last) or not increasing(keys)):
            out.ordered = False
        last = int(keys[-1])
        at = np.maximum(vers, 0)
        mixes = integrity.key_mixes(keys)
        if at[0] == at[-1] and bool((at == at[0]).all()):  # (a batch of one version: most are)
            out.inserted[at[0]] += keys.size
            # (in Python ints: a NumPy scalar sum warns where it wraps)
            out.inserted_sum[at[0]] = (int(out.inserted_sum[at[0]]) + int(mixes.sum(dtype=np.uint64))) & integrity.MASK
        else:
            out.inserted += np.bincount(at, minlength=n)
            np.add.at(out.inserted_sum, at, mixes)
        if not dead.size:
            continue
        pos = np.minimum(np.searchsorted(dead, keys), dead.size - 1)
        hit = np.flatnonzero(dead[pos] == keys)
        if not hit.size:
            continue
        # live from its version until its key's death; dead at or before its version: never live
        death = dead_at[pos[hit]]
        when = np.where(death <= vers[hit], at[hit], death)
        keep = when <= committed
        when = when[keep]
        out.gone += np.bincount(when, minlength=n)
        np.add.at(out.gone_sum, when, mixes[hit][keep])
    return out


def tally(store: Store, committed: int, dead: DeadKeys) -> SampleTally:
    """One scan of the samples (see the module docstring), the rows of ``dead`` keys counted
    as gone from the version their key dies at."""
    for attempt in range(READ_ATTEMPTS):
        ds = store._tables.open("samples")
        if ds is None:
            break
        try:
            return _scan(ds, committed, dead.keys, dead.at)
        except READ_ERRORS as exc:
            store._tables.retry_after("samples", exc, attempt)
    return _scan_nothing(committed)


def _scan_nothing(committed: int) -> SampleTally:
    n = committed + 1
    return SampleTally(committed, 0, 0, np.zeros(n, np.int64), np.zeros(n, np.uint64), np.zeros(n, np.int64),
                       np.zeros(n, np.uint64), True)


def _purged_live(store: Store, committed: int) -> tuple[np.ndarray, np.ndarray]:
    """The number and checksum of the purged keys live at each version (as a snapshot's
    ``unavailable()``: distinct keys, erased ones left out)."""
    n = committed + 1
    count, total = np.zeros(n, np.int64), np.zeros(n, np.uint64)
    t = store._tables.scan("purged", ["key", "inserted", "deleted", "_version"], f"_version <= {committed}")
    if t is None or not t.num_rows:
        return count, total
    k, ins, dele = (t.column(c).to_numpy().astype(np.int64, copy=False) for c in ("key", "inserted", "deleted"))
    erased = store._erased_keys(committed)
    if erased.size:
        pos = np.minimum(np.searchsorted(erased, k), erased.size - 1)
        keep = erased[pos] != k
        k, ins, dele = k[keep], ins[keep], dele[keep]
    if np.unique(k).size == k.size:
        # each key once: live from its insert until its delete, as differences
        start = np.maximum(ins, 0)
        live = (start <= committed) & (dele > start)
        mixes = integrity.key_mixes(k)
        count += np.bincount(start[live], minlength=n)[:n]
        np.add.at(total, start[live], mixes[live])
        ends = live & (dele <= committed)
        count -= np.bincount(dele[ends], minlength=n)[:n]
        np.subtract.at(total, dele[ends], mixes[ends])
        return np.cumsum(count), np.cumsum(total, dtype=np.uint64)
    for v in range(n):  # a key purged twice (damage or an old store): the set of each version
        keys = sorted_unique(k[(ins <= v) & (dele > v)])
        count[v], total[v] = keys.size, integrity.key_checksum(keys)
    return count, total


def live_by_version(store: Store, found: SampleTally) -> tuple[np.ndarray, np.ndarray]:
    """The number and checksum of the keys live at each version ``0 .. committed`` in the files
    (stored rows and purged keys), as a snapshot's key scan would find them."""
    count = np.cumsum(found.inserted - found.gone)
    total = np.cumsum(found.inserted_sum - found.gone_sum, dtype=np.uint64)
    pc, ps = _purged_live(store, found.committed)
    return count + pc, total + ps


def distinct_keys(store: Store, committed: int) -> bool:
    """Whether the samples rows of versions up to ``committed`` hold each key once, by an
    out-of-core sort of their keys (see the module docstring)."""
    folder = tempfile.mkdtemp(prefix="modyn-verify-")
    fs = fsspec.filesystem("file")
    try:
        for attempt in range(READ_ATTEMPTS):
            ds = store._tables.open("samples")
            if ds is None:
                return True
            try:
                pairs = ((k, k.view(np.uint64)) for (k,) in _batches(ds, ["key"], f"_version <= {committed}"))
                rows = write_sorted(fs, folder, pairs, stride=_READ_ROWS, run_rows=SORT_ROWS)
                break
            except READ_ERRORS as exc:
                store._tables.retry_after("samples", exc, attempt)
        else:  # pragma: no cover
            return True
        prev: int | None = None
        with fs.open(f"{folder}/keys.i64", "rb") as fh:
            for _ in range(0, rows, _READ_ROWS):
                block = np.frombuffer(fh.read(8 * _READ_ROWS), "<i8")
                if not block.size:
                    break
                if (prev is not None and int(block[0]) == prev) or bool((block[1:] == block[:-1]).any()):
                    return False
                prev = int(block[-1])
        return True
    finally:
        fs.rm(folder, recursive=True)
