"""The store's marker file: what makes a folder a store, and which format wrote it."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from modyn_store.core._location import Location
from modyn_store.core._objects import object_info
from modyn_store.core._plainjson import read_json
from modyn_store.core.errors import CorruptionError, FormatVersionError, InvalidArgumentError, NotAStoreError

if TYPE_CHECKING:
    from modyn_store.core.store import Store

__all__ = ["FORMAT_VERSION", "MARKER", "discard_unused", "open_or_create", "upgrade"]

#: 2: the version log is one object per version (``_log/``) plus the ``versions`` table;
#: 1: every version record in the ``versions`` table (read as is, upgraded by the next writer)
FORMAT_VERSION = 2
MARKER = "_modyn_store.json"


def _check(uri: str, meta: object) -> None:
    if not isinstance(meta, dict):
        raise NotAStoreError(f"{uri!r}: {MARKER} holds a JSON {type(meta).__name__}, not a store's marker object")
    if meta.get("format") != "modyn-store":
        raise NotAStoreError(f"{uri!r} holds a {MARKER} of another format: {meta.get('format')!r}")
    fv = meta.get("format_version")
    if isinstance(fv, bool) or not isinstance(fv, int) or fv > FORMAT_VERSION:
        raise FormatVersionError(
            f"{uri!r} was written with store format {fv!r}; this release reads formats "
            f"<= {FORMAT_VERSION}: upgrade modyn-store"
        )


def upgrade(loc: Location) -> None:
    """Record that the store is now of format :data:`FORMAT_VERSION` (called under the writer lock)."""
    _write(loc)


def _write(loc: Location) -> None:
    """Write the marker whole. Each write names itself with a random ``id``, so a store made
    again at the same location has another marker object (another entity tag on an object store,
    where a rewrite within a second keeps the last-modified time; see :func:`identity`).
    Concurrent creators write the same format, so whichever lands last is right; none may remove
    a file another is about to move."""
    fs = loc.fs
    marker = loc.path(MARKER)
    blob = json.dumps({"format": "modyn-store", "format_version": FORMAT_VERSION, "id": uuid.uuid4().hex}).encode()
    if not loc.is_local:  # one PUT is atomic on an object store (a move is a copy and a delete)
        fs.pipe_file(marker, blob)
        return
    tmp = f"{marker}.{uuid.uuid4().hex[:12]}.tmp"
    with fs.open(tmp, "wb") as fh:
        fh.write(blob)
    fs.mv(tmp, marker)


def _read(loc: Location) -> int:
    """The format version of the existing marker at ``loc`` (checked)."""
    raw = loc.read(MARKER)  # one GET on an object store
    if raw is None:
        raise NotAStoreError(f"{loc.uri!r}: its {MARKER} was removed while the store was opened")
    try:
        meta = read_json(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotAStoreError(f"{loc.uri!r}: {MARKER} is not valid JSON ({exc})") from exc
    _check(loc.uri, meta)
    return int(meta["format_version"])


def _only_markers(entries: list[str]) -> bool:
    """Whether a folder's ``entries`` are at most marker files being written (by concurrent
    creators of the same store: each writes the same bytes to a temporary name, then moves it)."""
    names = [str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries]
    return all(n.startswith(f"{MARKER}.") and n.endswith(".tmp") for n in names)


def _empty(loc: Location) -> bool:
    """Whether ``loc`` holds nothing but marker files being written: a local folder that does not
    exist or is empty, an object-store prefix with no object below it (one listing request)."""
    fs = loc.fs
    if loc.is_local:
        return not fs.exists(loc.root) or (fs.isdir(loc.root) and _only_markers(fs.ls(loc.root)))
    try:
        return _only_markers(fs.ls(loc.root, detail=False))
    except FileNotFoundError:
        return True


def identity(fs: Any, marker: str) -> tuple[str, ...] | None:
    """What tells one store from another created later at the same location: the identity of
    its marker file ``marker`` (inode and times on a local disk, the object's tag elsewhere);
    ``None`` when it cannot be read."""
    try:
        info = object_info(fs, marker)  # on S3 one HEAD (s3fs's info lists a missing key's folder)
    except (OSError, ValueError):
        return None
    if info is None:
        return None
    return tuple(str(info.get(k)) for k in ("ino", "created", "mtime", "ETag", "LastModified", "generation"))


def _parents(loc: Location) -> Iterator[Location]:
    """The folders above ``loc`` where an enclosing store's marker could lie: every parent of the
    resolved local path (symbolic links followed), every shorter prefix of an object-store URI
    down to its bucket; none for ``memory://`` stores (each has a private folder)."""
    if loc.is_local:
        if loc.uri.startswith("memory://"):
            return
        here = os.path.realpath(loc.root)
        while (up := os.path.dirname(here)) != here:
            here = up
            yield dataclasses.replace(loc, uri=here, root=here)
        return
    scheme, rest = loc.root.split("://", 1)
    parts = rest.rstrip("/").split("/")
    for n in range(len(parts) - 1, 0, -1):
        up = f"{scheme}://{'/'.join(parts[:n])}"
        yield dataclasses.replace(loc, uri=up, root=up)


def _enclosing_store(loc: Location) -> str | None:
    """The URI of a store whose folder holds ``loc``, or ``None``. On an object store this costs
    one request per level of the prefix; a level the credentials may not read is skipped."""
    for parent in _parents(loc):
        try:
            if parent.exists(MARKER):
                return parent.uri
        except PermissionError:
            continue
    return None


#: folders of a store whose subfolders' entries are checked for links too
_DEEPER = frozenset({"scores", "_meta"})


def _links(root: str) -> list[str]:
    """Symbolic links among the entries of the local store folder ``root``, of its folders, and
    of the folders of ``scores/`` and ``_meta/`` (store-relative paths)."""
    out: list[str] = []
    queue = [("", 0)]
    while queue:
        rel, depth = queue.pop()
        try:
            entries = list(os.scandir(os.path.join(root, rel) if rel else root))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for e in entries:
            sub = f"{rel}/{e.name}" if rel else e.name
            if e.is_symlink():
                out.append(sub)
            elif e.is_dir(follow_symlinks=False) and (depth == 0 or (depth == 1 and rel in _DEEPER)):
                queue.append((sub, depth + 1))
    return sorted(out)


def _links_under(root: str, folder: str) -> list[str]:
    """Symbolic links anywhere under ``folder`` (store-relative) of the local store folder
    ``root``, at any depth (store-relative paths); links are not followed."""
    out: list[str] = []
    queue = [folder]
    while queue:
        rel = queue.pop()
        try:
            entries = list(os.scandir(os.path.join(root, rel)))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for e in entries:
            sub = f"{rel}/{e.name}"
            if e.is_symlink():
                out.append(sub)
            elif e.is_dir(follow_symlinks=False):
                queue.append(sub)
    return sorted(out)


def _links_error(loc: Location, links: list[str]) -> CorruptionError:
    return CorruptionError(
        f"{loc.uri!r} holds symbolic links ({links[:5]}): a store's own files and folders must "
        "lie inside its folder (writes, erasure and eviction would reach the links' targets); "
        "replace each link by the folder or file it points to")


def _refuse_links(loc: Location) -> None:
    """Refuse a local store whose folder holds symbolic links where the store keeps its own
    files and folders: its writes, compaction, erasure and cache eviction would write or
    delete files outside the store's folder through them."""
    if not loc.is_local or loc.uri.startswith("memory://"):
        return
    links = _links(loc.root)
    if links:
        raise _links_error(loc, links)


def refuse_table_links(loc: Location, tables: list[str]) -> None:
    """Refuse, before any file is deleted, a local store with a symbolic link at any depth of the
    folders of the tables ``tables``: the storage layer's cleanup of old files lists a table's
    folder following links, and deletes the files it finds through a linked folder (those of
    the link's target, outside the store) as files no version uses. Opening the store looks
    only at the upper levels (:func:`_refuse_links`); this walks the whole folder of each table,
    as the cleanup does."""
    if not loc.is_local or loc.uri.startswith("memory://"):
        return
    links = [link for name in tables for link in _links_under(loc.root, f"{name}.lance")]
    if links:
        raise _links_error(loc, links)


def open_or_create(loc: Location, *, create: bool) -> int:
    """Check the marker at ``loc`` (or write one with ``create=True`` in an empty folder that
    lies inside no other store's folder).

    Returns the store's format version.
    """
    fs = loc.fs
    uri = loc.uri
    try:
        if loc.exists(MARKER):
            fv = _read(loc)
            _refuse_links(loc)
            return fv
        if not create:
            raise NotAStoreError(f"{uri!r} is not a modyn-store store (no {MARKER}); pass create=True to make one")
        outer = _enclosing_store(loc)
        if outer is not None:
            raise InvalidArgumentError(
                "uri", uri, f"a path outside the store at {outer!r} (a store inside another store's folder "
                "is damaged or removed by that store's compact, vacuum and erase)")
        if not _empty(loc):
            if loc.exists(MARKER):  # another process created the store since the look above
                return _read(loc)
            raise NotAStoreError(f"{uri!r} exists and is not empty but holds no store; choose an empty or new folder")
        if loc.is_local:  # object stores have no folders (and buckets are not made here)
            fs.makedirs(loc.root, exist_ok=True)
        try:
            _write(loc)
        except FileNotFoundError as exc:
            if loc.is_local:
                raise
            bucket = uri.split("://", 1)[1].split("/", 1)[0]
            raise NotAStoreError(f"{uri!r}: the bucket {bucket!r} does not exist; create it first") from exc
        return FORMAT_VERSION
    except (NotADirectoryError, FileExistsError) as exc:
        raise InvalidArgumentError("uri", uri, "a folder path (a parent of it is a file)") from exc
    except IsADirectoryError as exc:
        raise NotAStoreError(f"{uri!r}: {MARKER} is a folder, not a store's marker file") from exc


#: what a local store holds after ``open(create=True)`` and writes that were all rolled back:
#: the marker, the writer lock's file and the (empty) intent folder
_UNUSED = frozenset({MARKER, "_lock", "_txn"})


def discard_unused(store: Store, *, remove_folder: bool) -> bool:
    """Remove the local ``store`` if it never committed a version and holds nothing but
    what creating it (and rolled-back writes) left: the marker, the lock file and an empty
    intent folder. With ``remove_folder`` the folder goes too, else it is left empty.

    For a caller that created the store for a first write that failed, so that the refused
    input leaves the path as it was. Returns whether it removed the store; a store that holds
    anything else (a version, a pending write, another process's files) is left alone.
    """
    loc = store._location
    if not loc.is_local or loc.uri.startswith("memory://"):
        return False
    root = loc.root
    try:
        # under the writer lock: a writer of another process waiting for it finds the marker
        # gone when it reads the log and refuses (NotAStoreError), instead of writing into a
        # folder that is no store
        with store._lock:
            names = set(os.listdir(root))
            txn = os.path.join(root, "_txn")
            if not names <= _UNUSED or MARKER not in names or (os.path.isdir(txn) and os.listdir(txn)):
                return False
            os.remove(os.path.join(root, MARKER))  # first: from here on the folder is no store
            if os.path.isdir(txn):
                os.rmdir(txn)
        os.remove(os.path.join(root, "_lock"))
    except FileNotFoundError:
        return False  # removed meanwhile (by another process giving up on it as well)
    if remove_folder:
        try:
            os.rmdir(root)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                raise
            # another process writes into the folder now: it is left to it (no store any more)
    return True
