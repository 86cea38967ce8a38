"""What the version log records so that reads and ``verify`` can tell damage from data.

Every append records in its log entry the number of rows it inserted (``inserted``) and a
checksum of their keys (``details["checksum"]``: the sum, modulo 2**64, of a 64-bit mix of
each key; order-free and additive, so it can be recomputed from any grouping of rows). Every
erase records ``details["spans"]``: for each (inserted version, deleted version) pair of the
keys it erased, their count and checksum, since the erased rows themselves are gone. Every
delete records the checksum of the keys it tombstoned, so the tombstone table is checked
against the log as the samples are. With
these, the number of live keys of any version can be predicted from the log alone
(:func:`expected_live`), and a read that finds another number raises
:class:`~modyn_store.core.errors.CorruptionError` instead of answering.

Example
-------
>>> import numpy as np
>>> key_checksum(np.array([1, 2, 3])) == key_checksum(np.array([3, 1])) + key_checksum(np.array([2])) & MASK
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine._scratch import scratch
from modyn_store.core import _kept
from modyn_store.core._logfold import LogFold
from modyn_store.core.errors import CorruptionError

if TYPE_CHECKING:
    from modyn_store.core.records import VersionRecord
    from modyn_store.core.store import Store

__all__ = [
    "MASK", "Checksum", "expected_checksum", "expected_live", "key_checksum", "key_mixes",
    "run_checksum",
]

MASK = (1 << 64) - 1


#: the checksum mixes keys this many at a time, in place on two scratch buffers the thread keeps
#: (see ``engine._scratch``), so that its passes (multiply, xorshift, twice, and the sum) run
#: over data that stays in the CPU cache
CHUNK = 1 << 16
_C1 = np.uint64(0x9E3779B97F4A7C15)
_C2 = np.uint64(0xBF58476D1CE4E5B9)
_S29 = np.uint64(29)
_S32 = np.uint64(32)
#: 0, 1, ..., CHUNK - 1: a run of keys is this plus its first key, made in a scratch buffer
_IOTA = np.arange(CHUNK, dtype=np.uint64)
_IOTA.flags.writeable = False


def _mix(x: np.ndarray, z: np.ndarray, t: np.ndarray) -> None:
    """The 64-bit mix of each key of ``x`` (uint64) into ``z`` (``t``: scratch of its size;
    ``z`` may be ``x``, which is then overwritten).

    The bijective mix of each key: multiply, xorshift, multiply, xorshift.
    """
    np.multiply(x, _C1, out=z)
    np.right_shift(z, _S29, out=t)
    np.bitwise_xor(z, t, out=z)
    np.multiply(z, _C2, out=z)
    np.right_shift(z, _S32, out=t)
    np.bitwise_xor(z, t, out=z)


def _mix_sum(x: np.ndarray, z: np.ndarray, t: np.ndarray) -> int:
    """The sum of the 64-bit mixes of the keys ``x`` (arguments as for :func:`_mix`)."""
    _mix(x, z, t)
    return int(z.sum(dtype=np.uint64))


def key_mixes(keys: np.ndarray) -> np.ndarray:
    """The 64-bit mix of each key (uint64): their sum modulo 2**64, over any subset, is that
    subset's :func:`key_checksum`, so checksums of groups of keys can be summed per group.

    >>> int(key_mixes(np.array([1, 2, 3])).sum(dtype=np.uint64)) == key_checksum(np.array([1, 2, 3]))
    True
    """
    x = np.ascontiguousarray(keys, dtype=np.int64).reshape(-1).view(np.uint64)
    z = np.empty_like(x)
    _mix(x, z, np.empty_like(x))
    return z


class Checksum:
    """A running :func:`key_checksum` over arrays added one after another (same value as the
    checksum of their concatenation); ``value`` is the checksum so far.

    >>> c = Checksum()
    >>> c.add(np.array([3, 1])); c.add(np.array([2]))
    >>> c.value == key_checksum(np.array([1, 2, 3]))
    True
    """

    def __init__(self) -> None:
        self._total = 0

    @property
    def value(self) -> int:
        return self._total & MASK

    def add(self, keys: np.ndarray) -> None:
        """Add the keys of ``keys`` (any integer array; converted to int64 like the writer does)."""
        u = np.ascontiguousarray(keys, dtype=np.int64).reshape(-1).view(np.uint64)
        for start in range(0, u.size, CHUNK):
            x = u[start : start + CHUNK]
            self._total += _mix_sum(x, *scratch(x.size, 2))

    def add_run(self, first: int, n: int) -> None:
        """Add the ``n`` consecutive keys ``first, ..., first + n - 1`` (never made as an array)."""
        base = int(first) & MASK  # an int64 key's bits; + i stays in range: the run ends by 2^63 - 1
        for start in range(0, n, CHUNK):
            z, t = scratch(min(CHUNK, n - start), 2)
            np.add(_IOTA[: z.size], np.uint64((base + start) & MASK), out=z)
            self._total += _mix_sum(z, z, t)

    def add_value(self, value: int) -> None:
        """Add a checksum computed elsewhere (e.g. :func:`run_checksum`)."""
        self._total += value

    def remove(self, keys: np.ndarray) -> None:
        """Take the keys of ``keys`` out again (each must have been added)."""
        self._total -= key_checksum(keys)


def key_checksum(keys: np.ndarray) -> int:
    """Order-free checksum of int64 keys: sum of their 64-bit mixes modulo 2**64."""
    c = Checksum()
    c.add(keys)
    return c.value


#: the most run checksums the process keeps (a read of 10^8 auto-assigned keys in 64K-key
#: batches uses about 1,500; an entry is some 150 bytes)
RUNS_KEPT = 1 << 15
_RUNS: dict[tuple[int, int], int] = {}


#: how many run checksums this process computed (not taken from its map): a read that made
#: new ones keeps them on disk for the next process (see :func:`keep_runs`)
_COMPUTED = [0]
#: the entry the run checksums of a table's reads are kept under (see ``_kept``); the values
#: are a pure function of ``(first, n)``, so the entry is not tied to the table's content
_RUNS_ENTRY = "run checksums/1"
_RUNS_CONTENT = b"(first, n) -> run_checksum(first, n)"
_LOADED: set[str] = set()
_FROM_DISK: set[tuple[int, int]] = set()


def runs_computed() -> int:
    """How many run checksums this process has computed so far."""
    return _COMPUTED[0]


def load_kept_runs(table_dir: str) -> None:
    """Add to this process's run checksums those kept on disk for reads of ``table_dir`` (once
    per process and table; see :mod:`~modyn_store.core._kept`): a fresh process reading keys
    that earlier processes read then mixes only the runs they did not."""
    if table_dir in _LOADED:
        return
    _LOADED.add(table_dir)
    for first, n, value in _kept_runs(table_dir):
        if len(_RUNS) >= RUNS_KEPT:
            break
        if (first, n) not in _RUNS:
            _RUNS[(first, n)] = value
            _FROM_DISK.add((first, n))


def _kept_runs(table_dir: str) -> list[tuple[int, int, int]]:
    """``(first, n, checksum)`` of the runs kept on disk for ``table_dir`` (none if no entry)."""
    got = _kept.load(table_dir, _RUNS_CONTENT, _RUNS_ENTRY)
    if got is None or len(got) != 3 or not got[0].size == got[1].size == got[2].size:
        return []
    return list(zip(got[0].tolist(), got[1].tolist(), got[2].view(np.uint64).tolist()))


def forget_runs() -> None:
    """Forget every run checksum this process computed or took from disk, and which tables'
    kept runs it loaded: the state of a new process."""
    _RUNS.clear()
    _LOADED.clear()
    _FROM_DISK.clear()


def distrust_kept_runs() -> None:
    """Drop the run checksums taken from disk (a read whose keys disagree with the log
    computes them again before it reports damage; the tables are not loaded again)."""
    for key in list(_FROM_DISK):
        _RUNS.pop(key, None)
    _FROM_DISK.clear()


def keep_runs(table_dir: str, runs: Sequence[tuple[int, int]]) -> None:
    """Keep on disk the checksums of ``runs`` (computed by this process) for later reads of
    ``table_dir``, with those kept before (up to :data:`RUNS_KEPT`, these runs first)."""
    pairs = dict.fromkeys((int(f), int(n)) for f, n in runs)
    pairs.update(dict.fromkeys((f, n) for f, n, _ in _kept_runs(table_dir)))
    first: list[int] = []
    n: list[int] = []
    value: list[int] = []
    for key in pairs:
        if len(first) >= RUNS_KEPT:
            break
        v = _RUNS.get(key)
        if v is not None:
            first.append(key[0])
            n.append(key[1])
            value.append(v)
    arrays = (np.array(first, np.int64), np.array(n, np.int64), np.array(value, np.uint64).view(np.int64))
    _kept.save(table_dir, _RUNS_CONTENT, _RUNS_ENTRY, arrays)


def run_checksum(first: int, n: int) -> int:
    """``key_checksum`` of the ``n`` consecutive keys ``first, first + 1, ..., first + n - 1``.

    A pure function of ``(first, n)``, so the process keeps the values it computed (oldest
    dropped beyond :data:`RUNS_KEPT`): a scanned batch of keys that is strictly increasing and
    spans exactly its length is that run, and its checksum needs no pass over it. Nothing
    about a store is kept here; the caller establishes from the keys it read that they are
    the run. A first computation makes the run in scratch buffers, chunk by chunk.

    >>> run_checksum(10, 5) == key_checksum(np.arange(10, 15))
    True
    """
    key = (int(first), int(n))
    value = _RUNS.get(key)
    if value is None:
        c = Checksum()
        c.add_run(*key)
        value = c.value
        _COMPUTED[0] += 1
        while len(_RUNS) >= RUNS_KEPT:
            try:
                del _RUNS[next(iter(_RUNS))]
            except (KeyError, StopIteration, RuntimeError):  # another thread took it meanwhile
                break
        _RUNS[key] = value
    return value


def expected_live(
    store: Store, version: int, committed: int, records: Sequence[VersionRecord] | None = None
) -> int | None:
    """The number of keys live at ``version`` (purged ones included) that the log predicts,
    counting erasures committed up to ``committed``; ``None`` where the log cannot say
    (an erase written before spans were recorded). ``records``: the log's records (at least
    up to ``committed``) if the caller has read them."""
    if version == 0:
        return 0
    if records is None:
        records = store._read_records()
    if version > len(records) or records[version - 1].version != version:
        return None
    live = records[version - 1].live
    for r in _erases(records, committed, version):
        spans = r.details.get("spans")
        if spans is None:
            return None
        live -= sum(c for ins, dele, c, _ in spans if 0 <= ins <= version and (dele < 0 or dele > version))
    return live


def _checksum_value(cs: object, version: int) -> int:
    """A recorded checksum's value; a record holding something else is damaged (never read as
    "no checksum", which would switch the check off)."""
    if isinstance(cs, str) and 0 < len(cs) <= 16:
        try:
            return int(cs, 16)
        except ValueError:
            pass
    raise CorruptionError(
        f"the record of version {version} holds a malformed key checksum ({cs!r}); run `modyn-store verify`"
    )


@dataclass(frozen=True)
class _Sums:
    """What the first records of a log predict of the key checksum: the appends' checksums
    summed (``None`` from an append that recorded none on) and the deletes' (``None`` from a
    delete that recorded none on)."""

    appended: int | None
    deleted: int | None


def _fold_sums(before: _Sums | None, records: Sequence[VersionRecord]) -> _Sums:
    appended, deleted = (0, 0) if before is None else (before.appended, before.deleted)
    for r in records:
        if appended is None:
            break  # (the log cannot say: nothing more is read)
        if r.op == "append":
            if "checksum" not in r.details:  # written before checksums were recorded
                appended = None
            else:  # (anything else than a checksum there, null included, is damage)
                appended = (appended + _checksum_value(r.details["checksum"], r.version)) & MASK
        elif r.op == "delete" and deleted is not None:
            cs = r.details.get("checksum")
            deleted = None if cs is None else (deleted + _checksum_value(cs, r.version)) & MASK
    return _Sums(appended, deleted)


#: the sums of the last logs read, extended record by record (see ``_logfold``)
_SUMS = LogFold(_fold_sums)
#: the erase records of the last logs read
_ERASES: LogFold[tuple[VersionRecord, ...]] = LogFold(
    lambda before, records: (before or ()) + tuple(r for r in records if r.op == "erase")
)


def _erases(records: Sequence[VersionRecord], committed: int, after: int) -> list[VersionRecord]:
    """The erase records of versions ``after + 1 .. committed``."""
    return [r for r in _ERASES(records, committed) or () if r.version > after]


def expected_checksum(
    store: Store,
    version: int,
    committed: int,
    tombstoned: np.ndarray | int,
    records: Sequence[VersionRecord] | None = None,
) -> int | None:
    """The checksum of the keys live at ``version`` (purged ones included) that the log
    predicts, given the keys ``tombstoned`` at or before it (or their checksum, an int);
    ``None`` where the log cannot say (appends or erases written before checksums were
    recorded). ``records`` as for :func:`expected_live`. The sums over the records are kept
    per process (a read of the next version adds one record to them)."""
    if version == 0:
        return 0
    if records is None:
        records = store._read_records()
    if version > len(records) or records[version - 1].version != version:
        return None
    sums = _SUMS(records, version)
    if sums is None or sums.appended is None:
        return None
    # from the log where every delete recorded it (a damaged tombstone table then disagrees
    # with the keys read), else from the tombstones read (deletes written before it was recorded)
    deleted = sums.deleted
    if deleted is None:
        deleted = tombstoned if isinstance(tombstoned, int) else key_checksum(tombstoned)
    total = sums.appended - deleted
    for r in _erases(records, committed, 0):
        spans = r.details.get("spans")
        if spans is None:
            return None
        total -= sum(cs for ins, dele, _, cs in spans if 0 <= ins <= version and (dele < 0 or dele > version))
    return total & MASK
