"""Which incarnation of a local table a process last opened.

A table removed and made again at the same path (the samples or a score table that a killed
write created, dropped by recovery and then created by the next write) restarts Lance's
version numbers and fragment ids. A process that still holds what it read from the old table
(an open handle for "version N", the ``_version`` ranges of fragment ids) must not take the
new table's version N or fragment N for the same thing. A manifest is written once under its
name (Lance writes it whole and renames it), so the identity of its file (inode, modification
time, size) tells the two apart where the version number cannot. On object stores only the
number is compared.

Example
-------
>>> import os, tempfile
>>> from pathlib import Path
>>> folder = tempfile.mkdtemp()
>>> path = lambda name, v: os.path.join(folder, f"{name}-{v}")
>>> _ = Path(path("t", 1)).write_bytes(b"x")
>>> marks = Incarnations(True, path, os.path.exists)
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

__all__ = ["Identity", "Incarnations", "identity"]

#: (inode, modification time in ns, size) of a manifest file
Identity = tuple[int, int, int]


def identity(path: str) -> Identity | None:
    """The identity of the local file ``path`` (``None`` if it does not exist)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class Incarnations:
    """Per table, the Lance version and manifest identity this process last opened.

    ``manifest(name, version)`` is the path of a manifest; ``exists(path)`` is used instead of
    identities where ``local`` is false.
    """

    def __init__(self, local: bool, manifest: Callable[[str, int], str], exists: Callable[[str], bool]) -> None:
        self._local = local
        self._manifest = manifest
        self._exists = exists
        self._last: dict[str, tuple[int, Identity | None]] = {}

    def _identity(self, name: str, version: int) -> Identity | None:
        return identity(self._manifest(name, version))

    def current(self, name: str, version: int) -> bool:
        """Whether ``name``'s manifest ``version`` exists and (locally) is the file last opened."""
        if not self._local:
            return self._exists(self._manifest(name, version))
        found = self._identity(name, version)
        return found is not None and self._last.get(name) == (version, found)

    def opened(self, name: str, version: int, ranges: Any = None) -> bool:
        """Record that ``name`` was opened at ``version``; return whether the table opened
        before may have been another incarnation (then ``ranges.forget(name)``): its version is
        above this one, or its manifest is no longer the same file (also when a cleanup removed
        it: what was read from it cannot be told apart)."""
        if not self._local:
            return False
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
