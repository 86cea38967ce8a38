"""``verify``'s checks of the samples table against the log, in bounded memory.

One scan of ``key`` and ``_version`` in batches of :data:`SCAN_ROWS` rows gathers, per
version, the number of rows each version inserted and their key checksum (the sum modulo
2**64 of a per-key mix, see :mod:`~modyn_store.core.integrity`: additive, so it is summed
batch by batch), and the same for the rows that stop being live at each version (their key
was tombstoned then, or erased). The live count and checksum of every version are then
prefix sums of these, plus the purged keys live at it, with no version's key set ever made:
memory is one batch, a few arrays of one entry per version (and two of one per fragment),
and the dead keys (tombstones
and erasures, which every read of the store holds too). It is exactly what a snapshot's key
scan finds: a row is live at ``v`` when its version is at most ``v`` and its key is not
erased nor tombstoned at or before ``v`` (tombstones count from the first delete on).

The scan also reads each row's address, whose upper half is its fragment id: the smallest
and largest version of each fragment's rows are checked against the ranges reads go by
(:func:`range_findings`, see :mod:`~modyn_store.core._fragments`) with no second pass.

Keys are distinct when the scan meets them strictly increasing (keys assigned in order); else
a second scan sorts them out of core (:func:`~modyn_store.core._keyruns.write_sorted`, in
runs of :data:`SORT_ROWS` rows, into a temporary folder) and compares neighbours.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np

from modyn_store.core import integrity
from modyn_store.core._failures import READ_ATTEMPTS, READ_ERRORS
from modyn_store.core._keyruns import write_sorted
from modyn_store.core._keyscan import increasing

if TYPE_CHECKING:
    from modyn_store.core.records import VersionRecord
    from modyn_store.core.store import Store

__all__ = [
    "SCAN_ROWS", "SORT_ROWS", "DeadKeys", "SampleTally", "dead_keys", "distinct_keys", "live_by_version",
    "range_findings", "tally",
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
    #: per fragment of the scanned manifest: the smallest and largest ``_version`` of its rows
    #: (rows Lance deleted left out), and its physical rows (deleted ones included)
    spans: dict[int, tuple[int, int]] = field(default_factory=dict)
    rows: dict[int, int] = field(default_factory=dict)
    #: per fragment: the smallest and largest key of its rows (rows Lance deleted left out)
    key_spans: dict[int, tuple[int, int]] = field(default_factory=dict)


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


def _batches(
    ds: Any, columns: list[str], filter: str | None = None, *, addresses: bool = False
) -> Iterator[tuple[np.ndarray, ...]]:
    """Batches of ``columns`` as int64 arrays (``addresses``: and the rows' fragment ids last)."""
    for batch in ds.to_batches(columns=columns, filter=filter, batch_size=SCAN_ROWS, with_row_address=addresses):
        if batch.num_rows:
            out = [batch.column(i).to_numpy().astype(np.int64, copy=False) for i in range(len(columns))]
            if addresses:  # (a row address is the fragment id << 32 | the row's offset in it)
                out.append(batch.column(len(columns)).to_numpy() >> np.uint64(32))
            yield tuple(out)


def _note_spans(spans: dict[int, tuple[int, int]], frags: np.ndarray, values: np.ndarray) -> None:
    """Widen ``spans`` (fragment id -> smallest, largest value) by one batch's rows' ``values``
    (versions or keys)."""
    if frags[0] == frags[-1] and bool((frags == frags[0]).all()):  # (a batch of one fragment: most are)
        ids, lo, hi = [int(frags[0])], [int(values.min())], [int(values.max())]
    else:
        order = np.argsort(frags, kind="stable")
        f, v = frags[order], values[order]
        starts = np.flatnonzero(np.r_[True, f[1:] != f[:-1]])
        ids = f[starts].tolist()
        lo, hi = np.minimum.reduceat(v, starts).tolist(), np.maximum.reduceat(v, starts).tolist()
    for fid, a, b in zip(ids, lo, hi):
        had = spans.get(fid)
        spans[fid] = (a, b) if had is None else (min(had[0], a), max(had[1], b))


def _scan(ds: Any, committed: int, dead: np.ndarray, dead_at: np.ndarray) -> SampleTally:
    n = committed + 1
    out = SampleTally(committed, 0, 0, np.zeros(n, np.int64), np.zeros(n, np.uint64), np.zeros(n, np.int64),
                      np.zeros(n, np.uint64), True)
    out.rows = {f.fragment_id: f.physical_rows for f in ds.get_fragments()}
    last: int | None = None
    for keys, vers, frags in _batches(ds, ["key", "_version"], addresses=True):
        _note_spans(out.spans, frags, vers)
        _note_spans(out.key_spans, frags, keys)
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


def range_findings(store: Store, found: SampleTally) -> tuple[list[str], list[str]]:
    """The samples' recorded fragment ranges (:mod:`~modyn_store.core._fragments`) against the
    rows ``found`` in each fragment: ``(errors, notes)``.

    A reader goes by a recorded range whose row count is the fragment's: it reads the fragment
    without a version filter at versions at or above its largest, and skips it below its
    smallest. A range that does not hold every row's version therefore makes reads of some
    versions wrong (an error); a wider one only makes them filter rows they need not (fine).
    A range recorded with another row count is not used (the reader reads the fragment's
    versions itself): a note. The same holds of the keys' bounds recorded beside a range: a
    delete by key does not read a fragment whose bounds leave out its keys, so bounds that do
    not hold every key of the fragment's rows make such deletes miss live keys (an error).
    """
    recorded = store._tables.ranges.recorded("samples")
    wrong: list[str] = []
    unused: list[int] = []
    for fid, (lo, hi) in sorted(found.spans.items()):
        hit = recorded.get(fid)
        if hit is None:
            continue
        if hit[2] != found.rows.get(fid):
            unused.append(fid)
            continue
        if hit[0] > lo or hit[1] < hi:
            wrong.append(f"fragment {fid}: versions {hit[0]}..{hit[1]} recorded, its rows hold {lo}..{hi}")
        k_lo, k_hi = found.key_spans[fid]
        if len(hit) == 5 and (hit[3] > k_lo or hit[4] < k_hi):
            wrong.append(f"fragment {fid}: keys {hit[3]}..{hit[4]} recorded, its rows hold {k_lo}..{k_hi}")
    errors: list[str] = []
    notes: list[str] = []
    where = " and ".join(store._tables.ranges.files("samples")) or "the fragment-range file"
    if wrong:
        errors.append(
            f"samples: the ranges recorded in {where} do not hold the versions or keys of the rows of "
            f"{len(wrong)} fragment{'s' if len(wrong) > 1 else ''} ({'; '.join(wrong[:5])}): reads of the "
            "versions in between return wrong rows, deletes by key miss the keys outside (the file is a "
            "cache: without it, reads take the ranges from the data)"
        )
    if unused:
        notes.append(
            f"samples: {len(unused)} fragment ranges recorded in {where} give another row count than the "
            f"fragment's, e.g. fragments {unused[:5]}; reads ignore them and read those fragments' versions"
        )
    return errors, notes


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
    # live from its insert until its delete; a key purged more than once (damage or an old
    # store) counts once while any of its spans holds it: its overlapping spans are merged
    start = np.maximum(ins, 0)
    live = (start <= committed) & (dele > start)
    k, start, dele = _merged_spans(k[live], start[live], dele[live])
    mixes = integrity.key_mixes(k)
    count += np.bincount(start, minlength=n)[:n]
    np.add.at(total, start, mixes)
    ends = dele <= committed
    count -= np.bincount(dele[ends], minlength=n)[:n]
    np.subtract.at(total, dele[ends], mixes[ends])
    return np.cumsum(count), np.cumsum(total, dtype=np.uint64)


def _merged_spans(k: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The spans ``[start, end)`` (each not empty) of keys ``k``, the overlapping ones of a key
    merged: disjoint spans, so each key is counted once at every version (sorted once)."""
    if np.unique(k).size == k.size:
        return k, start, end  # (each key once: the usual case)
    order = np.lexsort((start, k))
    k, start, end = k[order], start[order], end[order]
    first = np.ones(k.size, bool)
    first[1:] = k[1:] != k[:-1]
    # the largest end of the key's spans so far: the running maximum of the ends' ranks, each
    # key's offset above every earlier key's so that the maximum starts again at each key
    ends, rank = np.unique(end, return_inverse=True)
    offset = np.cumsum(first) * ends.size
    reach = ends[np.maximum.accumulate(offset + rank) - offset]
    # a span starts a merged one when it is its key's first or starts after every earlier one ends
    new = first.copy()
    new[1:] |= start[1:] > reach[:-1]
    at = np.flatnonzero(new)
    last = np.r_[at[1:] - 1, k.size - 1]
    return k[at], start[at], reach[last]


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
