"""Checking a store against its version log (``fsck``): reports damage, never repairs it.

:func:`verify` reads the store without writing to it (no recovery, no lock) and returns a
:class:`VerifyReport` of findings. The quick check looks at metadata and file sizes; ``deep``
also reads every data file and recomputes each append's row count and key checksum. Both
read the samples in one streamed scan, in memory that does not grow with the number of rows
(see :mod:`~modyn_store.core._verify_samples`), which also checks the fragment version and key ranges
that reads go by. An erase or vacuum committed by another writer during the scan makes the
sample checks run again against the new log (see ``_check_samples_settled``).

Example
-------
>>> import pyarrow as pa
>>> from modyn_store import Store
>>> from modyn_store.core.verify import verify
>>> store = Store.open("memory://verify-doc", create=True)
>>> _ = store.append(pa.table({"ts": [1, 2, 3]}))
>>> verify(store.uri, deep=True).ok
True
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store.core import _txn, _verify_index, _verify_samples, integrity
from modyn_store.core._failures import damaged_files
from modyn_store.core._location import resolve
from modyn_store.core._marker import open_or_create
from modyn_store.core._runclaims import parsed_claims
from modyn_store.core.errors import CorruptionError, ModynStoreError

__all__ = ["CHANGE_ATTEMPTS", "Finding", "VerifyReport", "verify"]

#: runs of the sample checks while erases or vacuums commit during them (see verify)
CHANGE_ATTEMPTS = 3
#: the writes that remove rows from the samples (after their commit)
_REMOVES_ROWS = ("erase", "vacuum")


@dataclass(frozen=True)
class Finding:
    """One problem (``severity="error"``: damage) or remark (``"note"``) about the store."""

    severity: str
    what: str

    def __str__(self) -> str:
        return f"{self.severity.upper()}: {self.what}"


@dataclass(frozen=True)
class VerifyReport:
    """The result of :func:`verify`: ``ok`` is True when no finding is an error."""

    uri: str
    deep: bool
    versions: int
    checked: tuple[str, ...]
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]


def _attach(uri: str, storage_options: dict[str, Any] | None) -> Any:
    """A Store on ``uri`` without recovery or checks (verify reports; it changes nothing)."""
    from modyn_store.core.store import Store

    loc = resolve(uri, storage_options)
    open_or_create(loc, create=False)
    store = Store(loc, lock_timeout=0.0)
    store._tables.keep_on_disk = False  # verify reads the tables' files, never kept entries
    return store


def verify(uri: str, *, deep: bool = False, storage_options: dict[str, Any] | None = None) -> VerifyReport:
    """Check the store at ``uri`` against its version log; see the module docstring."""
    store = _attach(uri, storage_options)
    findings: list[Finding] = []
    checked: list[str] = []

    def error(what: str) -> None:
        findings.append(Finding("error", what))

    # -- the version log (the head first: writers committing meanwhile only move the log ahead)
    try:
        head = _txn.read_head(store)
    except CorruptionError as exc:
        error(str(exc))
        head = None
    try:
        records = store._read_records()
    except (ModynStoreError, OSError, ValueError) as exc:
        error(f"the version log cannot be read: {exc}")
        return VerifyReport(store.uri, deep, 0, tuple(checked), tuple(findings))
    committed = records[-1].version if records else 0
    checked.append("version log")
    if [r.version for r in records] != list(range(1, committed + 1)):
        error(f"the version log is not 1..{committed} without gaps: {[r.version for r in records][:20]}")
    if head is not None and head > committed:
        error(
            f"the version log ends at version {committed} but version {head} was committed: "
            "the log lost versions (a deleted or damaged manifest)"
        )
    intent = _txn.read_intent(store)
    pending: int | None = None
    if intent is not None:
        try:
            pending = int(intent["version"])
        except (ValueError, KeyError, TypeError):
            pending = committed + 1
        findings.append(Finding("note", f"an interrupted write (version {pending}) awaits recovery by the next writer"))

    # -- every table's files ------------------------------------------------------------------
    for name in store._tables.names():
        if store._tables.uncommitted(name):
            findings.append(Finding("note", f"table {name!r} was never committed (a killed create); writers drop it"))
            continue
        try:
            ds = store._tables.open(name)
        except (ModynStoreError, OSError, ValueError) as exc:
            error(f"table {name!r} cannot be opened: {exc}")
            continue
        if ds is None:
            continue
        checked.append(name)
        for bad in damaged_files(store._location, name, ds, deep=deep):
            error(f"table {name!r}: data file {bad}")
        for bad in _verify_index.lance_indexes(store, name, ds, deep):
            error(bad)
    listed = set(store._tables.names())
    written = store._written.all()
    for name, v in sorted(written.items()):
        if name not in listed:  # (a listed one was opened above)
            error(f"table {name!r} is missing, but version {v} of the log wrote it")
    try:
        recorded = _txn.recorded_tables(store)
    except CorruptionError:
        recorded = {}  # (reported above)
    for name, lance_version in sorted(recorded.items()):
        if name not in listed and name not in written:
            error(f"table {name!r} is missing, but a committed write left it at Lance version {lance_version}")
    try:
        runs = _verify_index.key_runs(store, deep)
    except (ModynStoreError, OSError, ValueError) as exc:
        runs = [f"key index: cannot be checked ({exc})"], []
    if runs is not None:
        for what in runs[0]:
            error(what)
        findings.extend(Finding("note", what) for what in runs[1])
        checked.append("key index")

    if not store._tables.exists("samples"):
        return VerifyReport(store.uri, deep, committed, tuple(checked), tuple(findings))

    # -- samples against the log, in one streamed scan (see _verify_samples) --------------------
    committed = _check_samples_settled(store, records, committed, pending, deep, findings, checked)
    _check_caches(store, findings)
    return VerifyReport(store.uri, deep, committed, tuple(checked), tuple(findings))


def _check_samples_settled(store: Any, records: list[Any], committed: int, pending: int | None, deep: bool,
                           findings: list[Finding], checked: list[str]) -> int:
    """The sample checks, run again while an erase or vacuum removes rows during them.

    Verify takes no lock: an erase or vacuum removes its rows after its commit, while its intent
    is on disk, so rows it removes while the samples are read (or has not removed yet: a purge
    still running, or one whose process was killed, which the next writer finishes) disagree
    with the log. So the log and the intent are read again after the checks; when such a write
    committed meanwhile, or the purge pending at the start has finished, the checks run again,
    up to :data:`CHANGE_ATTEMPTS` times. Where the store still changes, or a committed erase or
    vacuum has not finished its purge, a note says so and the count and checksum errors of the
    last run (what a removal of rows may explain) are marked as maybe coming from it; they stay
    errors (verify cannot tell them from damage: a store it could not check is not clean).
    Returns the version of the log the checks ran against.
    """
    purging = _unfinished_purge(store, records, committed)
    for _attempt in range(CHANGE_ATTEMPTS):
        found, done, by_removal = _check_samples(store, records, committed, pending, deep)
        try:
            now = store._read_records()
            after = _unfinished_purge(store, now, now[-1].version if now else 0)
        except (ModynStoreError, OSError, ValueError) as exc:
            found.append(Finding("note", f"the version log cannot be read again after the samples' checks ({exc}): "
                                         "an erase or vacuum committed during them would read as damage"))
            now, after = records, purging
        moved = sorted({r.op for r in now if r.version > committed and r.op in _REMOVES_ROWS})
        if not moved and (purging is None or after == purging):
            if purging is not None and by_removal:
                findings.append(Finding("note", f"the {purging[1]} committed as version {purging[0]} has not finished "
                                                "removing its rows (its purge is running, or its process was "
                                                "killed: the next writer finishes it); the counts marked below may "
                                                "come from it: run verify again after a write"))
            findings.extend(_marked(found, by_removal, "the unfinished purge") if purging is not None else found)
            checked.extend(done)
            return committed
        records, committed, purging = now, now[-1].version, after
    findings.append(Finding(
        "note",
        f"the store changed during verify: writes that remove rows ({', '.join(moved) or 'a purge'}) ran while "
        f"its samples were read, {CHANGE_ATTEMPTS} times; the counts marked below may come from them "
        "(run verify again)",
    ))
    findings.extend(_marked(found, by_removal, "that change"))
    return committed


def _unfinished_purge(store: Any, records: list[Any], committed: int) -> tuple[int, str] | None:
    """``(version, op)`` of a committed erase or vacuum whose intent is still on disk (its rows
    are being removed, or will be by the next writer), else ``None``."""
    intent = _txn.read_intent(store)
    try:
        version = int(intent["version"]) if intent is not None else None
    except (ValueError, KeyError, TypeError):
        return None
    if version is None or not 1 <= version <= committed or version > len(records):
        return None
    op = records[version - 1].op
    return (version, op) if op in _REMOVES_ROWS else None


def _marked(found: list[Finding], by_removal: set[int], why: str) -> list[Finding]:
    """``found`` with the errors at ``by_removal`` (what rows removed meanwhile may explain)
    marked as such; they stay errors: verify cannot tell them from damage, and a store it could
    not check is not reported clean."""
    return [Finding("error", f"{f.what} (maybe from {why})") if i in by_removal and f.severity == "error" else f
            for i, f in enumerate(found)]


def _check_samples(store: Any, records: list[Any], committed: int, pending: int | None,
                   deep: bool) -> tuple[list[Finding], list[str], set[int]]:
    """One run of the checks of the samples against the log of version ``committed``:
    ``(findings, what was checked, the positions of the count and checksum findings)``: those
    rows removed during the checks explain."""
    findings: list[Finding] = []
    checked: list[str] = []
    by_removal: set[int] = set()

    def error(what: str) -> None:
        findings.append(Finding("error", what))

    dead: _verify_samples.DeadKeys | None = None
    try:
        dead = _verify_samples.dead_keys(store, committed, records)
    except (ModynStoreError, OSError, ValueError) as exc:
        error(f"live keys cannot be read: {exc}")
    try:
        none = _verify_samples.DeadKeys.none(committed)
        found = _verify_samples.tally(store, committed, dead if dead is not None else none)
    except (ModynStoreError, OSError, ValueError) as exc:
        error(f"samples cannot be read: {exc}")
        return findings, checked, by_removal
    try:
        wrong, unused = _verify_samples.range_findings(store, found)
        for what in wrong:
            error(what)
        findings.extend(Finding("note", what) for what in unused)
        checked.append("fragment version and key ranges")
    except (ModynStoreError, OSError, ValueError) as exc:
        error(f"the samples' fragment ranges cannot be read: {exc}")
    if found.above and (pending is None or found.top > pending) and store.version < found.top:
        # (a writer that committed them meanwhile is no damage: the log is read again)
        error(
            f"samples hold {found.above} rows of versions above the log's last ({committed}) "
            "with no pending write: the log lost versions"
        )
    try:
        if not found.ordered and not _verify_samples.distinct_keys(store, committed):
            error("samples hold a key more than once")
    except (ModynStoreError, OSError, ValueError) as exc:
        error(f"samples cannot be read: {exc}")
    _check_run_claims(records, error)
    checked.append("key runs the appends recorded")
    first = len(findings)  # from here on: counts and checksums
    if dead is not None:  # (else reported above)
        try:
            _check_live(store, records, committed, deep, found, dead, error)
            checked.append("live counts" + (" of every version" if deep else " of the latest version"))
        except (ModynStoreError, OSError, ValueError) as exc:
            error(f"live keys cannot be read: {exc}")
    if deep:
        try:
            _check_appends(store, records, found, error)
            _check_deletes(store, records, committed, error)
            checked.append("row counts and key checksums of every append and delete")
        except (ModynStoreError, OSError, ValueError) as exc:
            error(f"appends and deletes cannot be checked: {exc}")
    by_removal.update(i for i, f in enumerate(findings) if i >= first and "cannot be" not in f.what)
    return findings, checked, by_removal


def _check_live(store: Any, records: list[Any], committed: int, deep: bool, found: _verify_samples.SampleTally,
                dead: _verify_samples.DeadKeys, error: Any) -> None:
    """The live count and key checksum of the latest version (``deep``: of every version) in
    the files against the log's."""
    snap_versions = range(1, committed + 1) if deep else ([committed] if committed else [])
    live_n, live_cs = _verify_samples.live_by_version(store, found)
    for v in snap_versions:
        want = integrity.expected_live(store, v, committed, records)
        if want is not None and int(live_n[v]) != want:
            error(f"version {v}: {int(live_n[v])} live keys in the files, the version log records {want}")
            continue
        want_cs = integrity.expected_checksum(store, v, committed, int(dead.tombstoned[v]), records)
        if want_cs is not None and want_cs != int(live_cs[v]):
            error(f"version {v}: the live keys in the files differ from those the version log records (checksum)")


def _check_run_claims(records: list[Any], error: Any) -> None:
    """Each append's recorded run of keys (reads take the run's checksum from its record, see
    :mod:`~modyn_store.core._runclaims`) against the record's own checksum and row count."""
    for r in records:
        if r.op != "append" or "run" not in r.details:
            continue
        claim = parsed_claims([r])
        if not claim:
            error(f"version {r.version}: the key run its record holds ({r.details['run']!r}) is malformed "
                  f"or disagrees with its {r.inserted} inserted rows")
        elif integrity.run_checksum(claim[0][0], claim[0][1]) != claim[0][2]:
            error(f"version {r.version}: the key run its record holds ({r.details['run']!r}) does not match "
                  "the checksum it records")


def _check_appends(store: Any, records: list[Any], found: _verify_samples.SampleTally, error: Any) -> None:
    """Recompute each append's row count and key checksum from samples (their per-version
    counts and checksums, ``found``), purged rows and erasures."""
    count: dict[int, int] = defaultdict(int)
    total: dict[int, int] = defaultdict(int)
    for v in np.flatnonzero(found.inserted).tolist():
        count[v] += int(found.inserted[v])
        total[v] = (total[v] + int(found.inserted_sum[v])) & integrity.MASK
    erased = store._erased_keys()
    purged = store._tables.scan("purged", ["key", "inserted"])
    if purged is not None and purged.num_rows:
        pk, pv = purged.column("key").to_numpy(), purged.column("inserted").to_numpy()
        keep = ~np.isin(pk, erased)
        for v in np.unique(pv[keep]):
            sel = keep & (pv == v)
            count[int(v)] += int(sel.sum())
            total[int(v)] = (total[int(v)] + integrity.key_checksum(pk[sel])) & integrity.MASK
    known_spans = True
    for r in records:
        if r.op == "erase":
            spans = r.details.get("spans")
            if spans is None:
                known_spans = False
                continue
            for ins, _dele, c, cs in spans:
                count[int(ins)] += int(c)
                total[int(ins)] = (total[int(ins)] + int(cs)) & integrity.MASK
    for r in records:
        if r.op != "append":
            if count.get(r.version) and r.version not in (0,):
                error(f"version {r.version} ({r.op}) has {count[r.version]} sample rows but inserted none")
            continue
        if count.get(r.version, 0) != r.inserted and known_spans:
            error(f"version {r.version}: {count.get(r.version, 0)} rows found, the log records {r.inserted} inserted")
            continue
        want = r.details.get("checksum")  # absent: written before checksums were recorded
        if "checksum" in r.details and known_spans and f"{total.get(r.version, 0):016x}" != want:
            error(f"version {r.version}: the keys' checksum is {total.get(r.version, 0):016x}, the log records {want}")


def _check_deletes(store: Any, records: list[Any], committed: int, error: Any) -> None:
    """Each delete's tombstones against its record: count and key checksum (deletes written
    before the checksum was recorded: count only)."""
    tomb = store._tables.scan("tombstones", ["key", "_version"], f"_version <= {committed}")
    if tomb is None:
        tomb = pa.table({"key": pa.array([], pa.int64()), "_version": pa.array([], pa.int64())})
    tk, tv = tomb.column("key").to_numpy(), tomb.column("_version").to_numpy()
    for r in records:
        if r.op != "delete":
            continue
        mine = tk[tv == r.version]
        if mine.size != r.deleted:
            error(f"version {r.version} (delete): {mine.size} tombstones, the log records {r.deleted} deleted")
        elif "checksum" in r.details and f"{integrity.key_checksum(mine):016x}" != r.details["checksum"]:
            error(f"version {r.version} (delete): the tombstoned keys' checksum differs from the log's")


def _check_caches(store: Any, findings: list[Finding]) -> None:
    for name in store.caches.entries():
        keys, _ = store.caches._record(name)
        if keys is None:
            findings.append(Finding("note", f"cache entry {name!r}: its key record is unreadable; erase removes it"))
