"""The version log: one small object per committed version, folded into a table now and then.

A version commits when its record object ``_log/<version>.json`` comes into existence. It is
created exclusively (a local hard link that fails if the name exists, S3's ``If-None-Match:
*``), so the data commit of a version is followed by exactly one more small write instead of a
second table commit. Every ``CHECKPOINT_EVERY`` versions the writer appends the records of the
objects to the ``versions`` table (the checkpoint: versions 1..C, one row each) and then removes
those objects; readers read the checkpoint's row count, then list the objects above it.

A reader that lists while a checkpoint removes objects sees a gap and reads again; a gap that
persists means a lost record, and reading raises :class:`CorruptionError` (nothing is answered
around it).

Stores of format 1 kept every record in the table; they read the same way (no objects) and
are upgraded to format 2 by their next writer.

Example
-------
>>> import pyarrow as pa
>>> from modyn_store import Store
>>> store = Store.open("memory://log-doc", create=True)
>>> store.append(pa.table({"ts": [1, 2]})).version
1
>>> store._log.latest(), [r.op for r in store._log.records()]
(1, ['append'])
"""

from __future__ import annotations

import errno
import json
import os
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from modyn_store.core import _kept, _logkept
from modyn_store.core._failures import READ_ATTEMPTS, READ_ERRORS
from modyn_store.core._logdigest import (
    DIGEST, SEALED_SCHEMA, check, consecutive, from_micros, in_order, plain_table, sealed, table_records,
)
from modyn_store.core._marker import MARKER, identity
from modyn_store.core._plainjson import read_json
from modyn_store.core.errors import ConflictError, CorruptionError, NotAStoreError
from modyn_store.core.records import VersionRecord

if TYPE_CHECKING:
    from modyn_store.core.store import Store

__all__ = ["CHECKPOINT_EVERY", "LOG", "VersionLog"]

LOG = "_log"
#: records folded into the ``versions`` table once this many objects are waiting
CHECKPOINT_EVERY = 32
#: local record files folded into the table wait here (named by the version they held) to be
#: rewritten for a later version: creating a file costs more than the rest of a small commit
#: on some file systems (a quarter of a millisecond on ext4 here), rewriting one in place does not
FREE = f"{LOG}/.free"
_NAME = re.compile(r"^(\d{12})\.json$")


def _encode(record: VersionRecord) -> bytes:
    return json.dumps(sealed(record, time_as_micros=True), sort_keys=True).encode()


def _decode(raw: bytes, version: int, where: str) -> VersionRecord:
    try:
        row = read_json(raw)
        check(row, where)  # (a record without a digest: an earlier release's, read as before)
        row["time"] = from_micros(row["time"])
        record = VersionRecord.from_row(row)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptionError(f"the version record {where!r} is unreadable ({exc}); run `modyn-store verify`") from exc
    if record.version != version:
        raise CorruptionError(f"the version record {where!r} holds version {record.version}; run `modyn-store verify`")
    return record


#: records decoded by this process, by version and the exact bytes of their object: a fresh
#: ``Store.open`` still reads every object, but decodes only bodies it has not seen
_DECODED: dict[tuple[int, bytes], VersionRecord] = {}
_DECODED_MAX = 1 << 12


def _decoded(raw: bytes, version: int, where: str) -> VersionRecord:
    """:func:`_decode`, or the record decoded earlier from the same bytes for the same version
    (records are frozen and shared, like those a log keeps in ``_objects``)."""
    key = (version, bytes(raw))
    rec = _DECODED.get(key)
    if rec is None:
        rec = _decode(raw, version, where)
        if len(_DECODED) >= _DECODED_MAX:
            _DECODED.clear()
        _DECODED[key] = rec
    return rec


def _first_missing(base: int, tail: list[int], n: int) -> list[int]:
    """The first ``n`` versions above ``base`` that ``tail`` (sorted record numbers) lacks,
    found between neighbours: a record file named with a huge version (a damaged or crafted
    log) costs no memory in proportion to it."""
    out: list[int] = []
    prev = base
    for v in tail:
        out.extend(range(prev + 1, min(v, prev + 1 + n - len(out))))
        if len(out) >= n:
            break
        prev = v
    return out


class VersionLog:
    """The committed versions of one store (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._checkpoint: tuple[int, list[VersionRecord]] | None = None  # (Lance version, rows)
        self._objects: dict[int, VersionRecord] = {}  # records read from objects (immutable)
        self._waiting = 0  # record objects above the table when this process last looked
        # (versions dataset, its row count) as last read: reused while the table has not moved
        self._table_seen: tuple[Any, int] | None = None
        # the marker file of the store the above was read from (see _same_store)
        self._marker: tuple[str, ...] | None = None
        # whether a first read may take the records kept on disk (see _logkept, distrust_kept)
        self._kept_ok = True
        self._from_kept = False  # whether _checkpoint came from there

    # -- paths ---------------------------------------------------------------------------
    @staticmethod
    def _name(version: int) -> str:
        """The record object of ``version``, relative to the store's root."""
        return f"{LOG}/{version:012d}.json"

    def _path(self, version: int) -> str:
        return self.store._location.path(self._name(version))

    def _listed(self) -> list[int]:
        loc = self.store._location
        try:
            entries = os.listdir(loc.path(LOG)) if loc.is_local else loc.fs.ls(loc.path(LOG), detail=False)
        except FileNotFoundError:
            return []
        out = []
        for e in entries:
            m = _NAME.match(str(e).rstrip("/").rsplit("/", 1)[-1])
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    # -- reading -------------------------------------------------------------------------
    def _same_store(self) -> None:
        """Forget what was read of another store: a store deleted and made again at this
        path (by another process) numbers its versions from 1 again, with other records."""
        loc = self.store._location
        with loc.typed_errors():  # an endpoint that does not answer: StorageUnavailableError
            found = identity(loc.fs, loc.path(MARKER))
        if found is None:
            if loc.is_local and not loc.uri.startswith("memory://") and not os.path.exists(loc.path(MARKER)):
                raise NotAStoreError(f"{loc.uri!r} is no longer a store: its marker {MARKER} was removed "
                                     "(by a first write that failed and gave the path back)")
            return
        if self._marker is not None and found != self._marker:
            self._objects.clear()
            self._checkpoint = self._table_seen = None
            self._waiting = 0
            self.store._forget_read_state()
        self._marker = found

    def _state(self) -> tuple[Any, int, list[int]]:
        """(checkpoint dataset, its row count C, the record objects C+1, C+2 ...), consistent."""
        self._same_store()
        gaps = 0
        for _ in range(100 * READ_ATTEMPTS):
            seen = self._table_seen
            if seen is not None:
                # the table as this process last found it: if it has not moved (checked below,
                # after the listing), its row count is still the one read then
                ds, base = seen
            else:
                ds = self.store._tables.open("versions")
                base = int(ds.count_rows()) if ds is not None else 0
            tail = [v for v in self._listed() if v > base]
            # a checkpoint commits the table before it removes objects: if the table did not
            # move while the objects were listed, none above its rows was removed
            if self.store._tables.moved_on("versions", ds):
                self._table_seen = None
                continue
            self._table_seen = (ds, base)
            if not tail or tail[-1] - base == len(tail) and tail[0] == base + 1:
                self._waiting = len(tail)
                return ds, base, tail
            gaps += 1
            if gaps == READ_ATTEMPTS:
                missing = _first_missing(base, tail, 5)
                raise CorruptionError(
                    f"{self.store.uri!r}: the version log has no record of versions {missing} although "
                    f"version {tail[-1]} committed: the log lost versions. Run `modyn-store verify` and "
                    "restore the store from a backup"
                )
            time.sleep(0.005 * gaps)
        raise CorruptionError(f"{self.store.uri!r}: the version log changed under every read; retry")

    def latest(self) -> int:
        """The latest committed version (0 for an empty store)."""
        _, base, tail = self._state()
        return base + len(tail)

    def records(self) -> list[VersionRecord]:
        """Every committed version's record, oldest first."""
        for attempt in range(READ_ATTEMPTS):
            ds, base, tail = self._state()
            try:
                out = self._checkpointed(ds)
            except READ_ERRORS as exc:
                # maintenance compacted the table and removed the files of the manifest opened
                # here: read the latest one; a failure that persists is damage
                self.store._tables.retry_after("versions", exc, attempt)
                continue
            if [r.version for r in out[-1:]] != ([base] if base else []):
                raise CorruptionError(
                    f"{self.store.uri!r}: the versions table holds {len(out)} records in {base} rows; "
                    "run `modyn-store verify`"
                )
            try:
                for v in tail:
                    rec = self._objects.get(v)
                    if rec is None:
                        raw = self.store._location.read(self._name(v))
                        if raw is None:
                            raise FileNotFoundError(self._path(v))
                        rec = self._objects[v] = _decoded(raw, v, self._path(v))
                    out.append(rec)
            except FileNotFoundError:
                continue  # folded into the table meanwhile: read again
            except CorruptionError:
                # a local record file folded into the table is rewritten for a later version
                # (see FREE), at least a checkpoint later: a reader that opened it before and
                # read only after that reads another body. Read the log again; damage persists
                if attempt + 1 == READ_ATTEMPTS:
                    raise
                time.sleep(0.005 * (attempt + 1))
                continue
            return out
        raise CorruptionError(f"{self.store.uri!r}: the version log changed under every read; retry")

    def _checkpointed(self, ds: Any) -> list[VersionRecord]:
        if ds is None:
            return []
        lv = ds.version
        cached = self._checkpoint
        if cached is not None and self._from_kept and self.store._tables._pinned() is not None:
            cached = None  # a writer decides from the table itself, never from the read cache
        if cached is not None and cached[0] == lv:
            return list(cached[1])
        # the table only grows, so read just the new rows; a table that went back (a lost
        # manifest) is read again in full, never trusted from memory
        known = cached[1] if cached is not None and cached[0] < lv else []
        since = known[-1].version if known else 0
        where = self.store._tables.uri("versions")
        # a first read takes what a fresh process read of this very table before, if kept
        source = None if cached is not None else self.store._tables.kept_source("versions", ds)
        kept = _kept.load(*source, _logkept.WHAT) if source is not None and self._kept_ok else None
        new = _logkept.decoded(kept) if kept is not None else None
        self._from_kept = new is not None
        if new is not None:
            consecutive(new, 1, where)
        else:
            # (no filter on a first read: planning one costs more than the rows)
            rows = in_order(ds.to_table(filter=f"_version > {since}") if since else ds.to_table())
            new = table_records(rows, where)
            consecutive(new, since + 1, where)
            if source is not None and plain_table(rows):  # every row checked: keep them for the next process
                _kept.save(*source, _logkept.WHAT, _logkept.encoded(rows))
        records = known + new
        self._checkpoint = (lv, records)
        return list(records)

    def distrust_kept(self) -> None:
        """Read the ``versions`` table itself from now on: a read disagreed with the log
        (``_count.read_again``). Records taken from the read cache are forgotten; the next read
        of the table keeps its records again, in place of the entry read before."""
        if self._from_kept:
            self._checkpoint = None
            self._from_kept = False
        self._kept_ok = False

    # -- writing (under the writer lock) ---------------------------------------------------
    def commit(self, record: VersionRecord) -> None:
        """Create ``record``'s object: the commit point of its version.

        Raises :class:`ConflictError` if the object exists (another writer committed this
        version), leaving it untouched.
        """
        path = self._path(record.version)
        data = _encode(record)
        loc = self.store._location
        if loc.is_local:
            # a free file is only taken once it left the log two checkpoints ago or earlier
            reused = _reuse_local(loc.path(FREE), path, data, record.version - 2 * CHECKPOINT_EVERY)
            created = _create_local(path, data) if reused is None else reused
        elif loc.scheme == "s3":
            from modyn_store.core._lease import _precondition_failed

            fs = self.store.fs
            try:
                fs.pipe_file(path, data, mode="create")
                created = True
            except FileExistsError:
                created = False
            except OSError as exc:
                if not _precondition_failed(exc):
                    raise
                created = False
        else:  # no conditional create: the in-process writer lock orders commits
            fs = self.store.fs
            created = not fs.exists(path)
            if created:
                fs.pipe_file(path, data)
        if created and not loc.is_local and self._state()[1] >= record.version:
            # created after another writer's record of this version was folded into the
            # table and removed (a writer that lost its lease): the table's record stands
            self.store.fs.rm(path)
            created = False
        if not created:
            raise ConflictError(
                f"another writer committed store version {record.version} ({path!r}); "
                "this write was not applied: retry it"
            )
        self._objects[record.version] = record
        self._waiting += 1

    def checkpoint(self, *, every: int | None = None) -> bool:
        """Fold the record objects into the ``versions`` table once ``every`` are waiting.

        Called by the writer under the lock after its commit: the count seen when the write
        began, plus its own record, is exact then, so most calls do no I/O.
        """
        if self._waiting < (CHECKPOINT_EVERY if every is None else every):
            return False
        ds, base, tail = self._state()
        if len(tail) < (CHECKPOINT_EVERY if every is None else every):
            return False
        records = self.records()[base:]
        if ds is not None and DIGEST not in ds.schema.names:
            # a table of an earlier release: add the (null) digest column first
            self.store._tables._unpin("versions")
            ds.add_columns(SEALED_SCHEMA.field(DIGEST))
        rows = pa.Table.from_pylist([sealed(r) for r in records], schema=SEALED_SCHEMA)
        self.store._tables.append("versions", rows)
        fs = self.store.fs
        loc = self.store._location
        free = loc.path(FREE) if loc.is_local else None
        if free is not None:
            os.makedirs(free, exist_ok=True)
            room = 2 * CHECKPOINT_EVERY - len(os.listdir(free))
        for r in records:  # the table has them now; a crash here leaves objects it ignores
            try:
                if free is not None and room > 0:
                    os.rename(self._path(r.version), os.path.join(free, f"{r.version:012d}"))
                    room -= 1
                else:
                    fs.rm(self._path(r.version))
            except FileNotFoundError:
                pass
        self._waiting = 0
        self.store._tables.compact_if_fragmented("versions")
        return True


def _reuse_local(free: str, path: str, data: bytes, newest: int) -> bool | None:
    """Rewrite a free record file (one that held version ``newest`` or older) with ``data`` and
    link it as ``path`` unless that exists; ``None`` if no free file could be used.

    The body is padded with blanks to the file's size (no truncation: a truncated file is
    flushed by the file system) and written before the file gets its new name, so a reader
    of ``path`` never sees it half-written. A file that still has another name (a writer
    killed between linking and unlinking it) is a committed record and is never rewritten.
    """
    try:
        names = sorted(os.listdir(free))
    except FileNotFoundError:
        return None
    for name in names:
        if not name.isdigit() or int(name) > newest:
            break
        src = os.path.join(free, name)
        try:
            # never through a symbolic link: its target may lie outside the store
            fd = os.open(src, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            os.unlink(src)  # a link is no free record: drops only its name
            continue
        try:
            st = os.fstat(fd)
            usable = st.st_nlink == 1
            if usable:
                os.pwrite(fd, data.ljust(st.st_size), 0)
        finally:
            os.close(fd)
        if not usable:
            os.unlink(src)  # drops only this name
            continue
        try:
            os.link(src, path)  # fails if the name exists
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            return None  # no hard links here
        os.unlink(src)
        return True
    return None


def _create_local(path: str, data: bytes) -> bool:
    """Create ``path`` holding ``data`` unless it exists; never a torn or half-written file."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    try:
        try:
            os.link(tmp, path)  # fails if the name exists
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            # no hard links here: the writer's file lock makes check-then-rename exclusive
            if os.path.exists(path):
                return False
            os.replace(tmp, path)
            return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
