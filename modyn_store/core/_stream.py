"""Streams of a snapshot's live rows that survive maintenance deleting their files.

A stream drops each scanned batch's dead keys by position (:func:`dead_positions`), re-reads
the dead set when an erase commits meanwhile, and, when files it started from vanish (a
concurrent compaction, erase or vacuum), resumes on a fresh manifest skipping the keys it
already yielded. :meth:`Snapshot.to_batches` and :meth:`Snapshot.iter_keys` return it.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import lance
import numpy as np
import pyarrow as pa

from engine._search import PREFILTER_MIN, HashedKeys, union_keys
from modyn_store.core import _deadpos
from modyn_store.core._failures import READ_ATTEMPTS, READ_ERRORS, vanished
from modyn_store.core._keyscan import SeenKeys, SeenSet, dead_positions, filter_batch, increasing
from modyn_store.core._validate import filter_error, lance_reason
from modyn_store.core.errors import ConflictError, InvalidFilterError

if TYPE_CHECKING:
    from modyn_store.core.snapshot import Snapshot

__all__ = ["ERASE_CHECK_S", "DeadKeys", "check_filter_before_rows", "check_filter_on", "erased_here",
           "live_stream"]

#: a stream re-checks for newly committed erasures of other processes at most this often (seconds)
ERASE_CHECK_S = 0.1

#: erases this process committed: a stream of the process re-checks at its next batch after one
_ERASES_HERE = [0]


def erased_here() -> None:
    """Note that this process committed an erase: every stream of the process reads the dead
    set again before its next batch, so none returns an erased row once ``erase`` returned."""
    _ERASES_HERE[0] += 1


class DeadKeys:
    """The keys a stream of ``snap`` must drop now: an erase committed while it streams applies
    to the rest of the stream, looked for at most every :data:`ERASE_CHECK_S` seconds, and at
    once after an erase of this process (:func:`erased_here`).

    The keys a committed vacuum purged (``Snapshot._with_unavailable``) are dropped too: a
    vacuum commits before it removes their rows, so until its purge finished (another process's
    vacuum, or one killed before the next writer finished it) they are still stored, and a
    stream returns the rows it returns after the purge.

    The same array object is returned while the set is unchanged (callers key caches on it).
    """

    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap
        self._here = _ERASES_HERE[0]
        self._dead = snap._dead()
        self._keys = snap._with_unavailable(self._dead)
        self._checked = time.monotonic()

    def __call__(self) -> np.ndarray:
        here = _ERASES_HERE[0]
        if here != self._here or time.monotonic() - self._checked > ERASE_CHECK_S:
            dead = self._snap._dead()
            if dead is not self._dead:
                self._dead, self._keys = dead, self._snap._with_unavailable(dead)
            self._checked, self._here = time.monotonic(), here
        return self._keys


def live_stream(
    snap: Snapshot,
    readers: list[Iterator[pa.RecordBatch]],
    read: list[str],
    filter: str | None,
    batch_size: int,
    *,
    drop_key: bool = False,
    keys_only: bool = False,
    on_unavailable: str = "skip",
    source: Any = None,
) -> Iterator[Any]:
    """Live rows of ``readers`` as record batches (or, with ``keys_only``, key arrays); if
    files vanish mid-stream, resume on a fresh manifest, skipping the keys already yielded
    (storage order may differ after a compaction). A vacuum that purged rows this stream has
    not read yet raises :class:`DataUnavailableError` when it resumes, unless
    ``on_unavailable="skip"``. ``source``: the Lance dataset ``readers`` read; without a
    ``filter``, the rows the stream drops by NumPy's hashed filter are kept for the next
    stream of the same version (:mod:`~modyn_store.core._deadpos`)."""
    at = read.index("key")
    read_keys = SeenKeys()
    done: SeenSet | None = None
    hashed: HashedKeys | None = None  # the dead keys made ready for batches in any order
    keeps = filter is None and source is not None
    for attempt in range(READ_ATTEMPTS):
        try:
            current = DeadKeys(snap)
            # the drops of this version's stream, kept by an earlier stream or kept by this one
            drops = None
            if keeps and not attempt:
                drops = _deadpos.Drops(lambda: snap._store._tables.kept_source("samples", source), snap.version, current())
            for batch in (b for r in readers for b in r):
                dead = current()
                col = batch.column(at)
                k = col.to_numpy()
                ordered = increasing(k)  # one look, shared by the two searches below
                # dead ones too: they keep the key runs unbroken; a key column whose values
                # buffer holds little beyond this batch's keys is kept as a view (no copy)
                own = col.offset == 0 and col.buffers()[1].size <= 2 * k.nbytes + 64
                read_keys.add(k, ordered=ordered, own_buffer=own)
                if not ordered and k.size >= PREFILTER_MIN and dead.size and (hashed is None or hashed.keys is not dead):
                    # built once for the stream: its table may hold 512 slots (64 bytes) a key of this batch
                    hashed = HashedKeys.for_stream(dead, k.size)
                costly = not ordered and hashed is not None and hashed.keys is dead and hashed.numpy_filter
                drop = drops.take(k, dead, costly) if drops is not None else None
                if drop is None:
                    drop = dead_positions(k, dead, ordered=ordered, hashed=hashed)
                if drops is not None:
                    drops.add(drop, k.size)
                if done is not None:
                    drop = union_keys(drop, done.positions(k))
                if drop.size == k.size:
                    continue
                if drop.size:
                    keep = np.ones(k.size, bool)
                    keep[drop] = False
                    if keys_only:
                        k = k[keep]
                    else:
                        batch = filter_batch(batch, keep)
                out = k if keys_only else (batch.drop_columns(["key"]) if drop_key else batch)
                n = out.size if keys_only else out.num_rows
                if n <= batch_size:
                    yield out
                    continue
                # Lance may hand back more rows than asked (e.g. under a filter): cut them to
                # ``batch_size``, the bound callers size their memory by
                if drop.size and not keys_only:
                    k = k[keep]  # the keys of out's rows, for the slices' check below
                for start in range(0, n, batch_size):
                    part = out[start : start + batch_size]
                    now = current()
                    if now is not dead:
                        # an erase committed while the slices before were consumed: the batch
                        # was checked against the keys dead then, this slice is checked again
                        pk = k[start : start + batch_size]
                        gone = dead_positions(pk, now, ordered=bool(increasing(pk)))
                        if gone.size == pk.size:
                            continue  # every row of the slice erased: no empty batch
                        if gone.size:
                            mask = np.ones(pk.size, bool)
                            mask[gone] = False
                            part = part[mask] if keys_only else filter_batch(part, mask)
                    yield part
            if drops is not None:
                drops.finish(current())
            return
        except READ_ERRORS as exc:
            if filter is not None and not vanished(exc):
                raise filter_error(filter, exc) from exc
            if read_keys.overflowed and vanished(exc) and attempt + 1 < READ_ATTEMPTS:
                raise ConflictError(
                    "files this stream was reading were removed by a concurrent compact, erase or "
                    "vacuum, after it had read more keys out of key order than it keeps to resume "
                    "from; read again"
                ) from exc
            snap._store._tables.retry_after("samples", exc, attempt)
            snap._refresh()
            done = read_keys.frozen()
            # the files first, then the check: a vacuum that purged rows before they were
            # opened is seen by it (one after reads them, or makes them vanish again)
            ds = snap._store._tables.open("samples")
            if on_unavailable == "error":
                snap._check_unavailable("error", seen=done)
            readers = [] if ds is None else snap._readers(ds, read, filter, batch_size=batch_size)


def check_filter_on(ds: Any, filter: str) -> None:
    """Refuse ``filter`` if Lance cannot evaluate it on the table ``ds`` (an unknown column, a
    broken expression): for reads of a version without rows, which open no reader that would."""
    try:
        ds.scanner(columns=["key"], filter=f"({filter})", limit=0).to_table()
    except READ_ERRORS as exc:
        if not vanished(exc):
            raise filter_error(filter, exc) from exc


#: event-time types a ``ts`` column may have: a filter before the first append must fit one
_TS_TYPES = (pa.int64(), pa.float64(), pa.timestamp("us", tz="UTC"), pa.date32())


@functools.lru_cache(maxsize=1)
def _rowless_tables() -> tuple[Any, ...]:
    """Empty in-memory Lance tables with the columns every store has: ``key``, ``_version`` and
    ``ts`` (one table per event-time type, as the type is unknown before the first append)."""
    tag = uuid.uuid4().hex
    return tuple(
        lance.write_dataset(
            pa.schema([("key", pa.int64()), ("ts", ts), ("_version", pa.int64())]).empty_table(),
            f"memory://modyn-filter-check-{tag}-{i}",
        )
        for i, ts in enumerate(_TS_TYPES)
    )


def check_filter_before_rows(filter: str) -> None:
    """Refuse ``filter`` on a store that has no samples table yet (no append committed).

    Its columns are not known until the first append, except ``key``, ``ts`` (of some
    event-time type) and ``_version``: a filter that parses over those is accepted (it matches
    no row), any other, such as one naming a payload column, raises
    :class:`~modyn_store.core.errors.InvalidFilterError` instead of being taken on trust.
    """
    first: Exception | None = None
    for ds in _rowless_tables():
        try:
            ds.scanner(columns=["key"], filter=f"({filter})", limit=0).to_table()
            return
        except READ_ERRORS as exc:
            first = first or exc
    raise InvalidFilterError(
        f"invalid filter {filter!r}: the store has no rows yet, so only its columns key, ts and "
        f"_version are known and a filter may name only those until the first append ({lance_reason(str(first))})"
    )
