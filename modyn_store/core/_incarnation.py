"""Which incarnation of a table a process last opened.

A table removed and made again at the same path (the samples or a score table that a killed
write created, dropped by recovery and then created by the next write) restarts Lance's
version numbers and fragment ids. A process that still holds what it read from the old table
(an open handle for "version N", the ``_version`` ranges of fragment ids) must not take the
new table's version N or fragment N for the same thing. A manifest is written once under its
name (Lance writes it whole and renames it, or PUTs it once on an object store), so the
identity of its file tells the two apart where the version number cannot: inode, modification
time and size on a local disk; on an object store the object's entity tag (a digest of its
bytes: a manifest names the uniquely named data files of its table), last-modified time and
size, one HEAD request (the check that a table has not moved costs what its existence check
did; a fresh open of a table costs one request more).

Example
-------
>>> import os, tempfile
>>> from pathlib import Path
>>> folder = tempfile.mkdtemp()
>>> path = lambda name, v: os.path.join(folder, f"{name}-{v}")
>>> _ = Path(path("t", 1)).write_bytes(b"x")
>>> marks = Incarnations(path, identity)
>>> marks.opened("t", 1), marks.current("t", 1)
(False, True)
>>> os.remove(path("t", 1)); _ = Path(path("t", 1)).write_bytes(b"yy")  # made again
>>> marks.current("t", 1), marks.opened("t", 1)
(False, True)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


__all__ = ["Identity", "Incarnations", "identity", "object_identity"]

#: (inode, modification time in ns, size) of a local manifest file; (entity tag, last-modified
#: time, size) of a manifest object
Identity = tuple[object, ...]


def identity(path: str) -> Identity | None:
    """The identity of the local file ``path`` (``None`` if it does not exist)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def object_identity(info: dict[str, Any] | None) -> Identity | None:
    """The identity of a manifest object from its metadata ``info`` (one HEAD request:
    ``Location.info``; ``None`` if it does not exist)."""
    if info is None:
        return None
    tag = next((info[k] for k in ("ETag", "etag", "generation", "md5Hash") if info.get(k) is not None), None)
    when = next((info[k] for k in ("LastModified", "last_modified", "updated", "mtime") if info.get(k) is not None), None)
    return (str(tag), str(when), info.get("size"))


class Incarnations:
    """Per table, the Lance version and manifest identity this process last opened.

    ``manifest(name, version)`` is the path of a manifest; ``identify(path)`` its identity
    (:func:`identity` on a local disk, :func:`object_identity` on an object store; ``None``
    when it does not exist).
    """

    def __init__(self, manifest: Callable[[str, int], str], identify: Callable[[str], Identity | None]) -> None:
        self._manifest = manifest
        self._identify = identify
        self._last: dict[str, tuple[int, Identity | None]] = {}

    def _identity(self, name: str, version: int) -> Identity | None:
        return self._identify(self._manifest(name, version))

    def current(self, name: str, version: int) -> bool:
        """Whether ``name``'s manifest ``version`` exists and is the file last opened."""
        found = self._identity(name, version)
        return found is not None and self._last.get(name) == (version, found)

    def opened(self, name: str, version: int, ranges: Any = None) -> bool:
        """Record that ``name`` was opened at ``version``; return whether the table opened
        before may have been another incarnation (then ``ranges.forget(name)``): its version is
        above this one, or its manifest is no longer the same file (also when a cleanup removed
        it: what was read from it cannot be told apart)."""
        found = self._identity(name, version)
        last = self._last.get(name)
        self._last[name] = (version, found)
        if last is None or found is None:
            return False
        seen, was = last
        replaced = version < seen or (version == seen and found != was)
        replaced = replaced or (version > seen and self._identity(name, seen) != was)
        if replaced and ranges is not None:
            ranges.forget(name)
        return replaced

    def forget(self, name: str, ranges: Any = None) -> None:
        """Drop the record of ``name`` (its folder is gone), and ``ranges.forget(name)``."""
        self._last.pop(name, None)
        if ranges is not None:
            ranges.forget(name)
