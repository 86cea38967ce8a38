"""Where a store lives: local folders, ``memory://`` stores and object-store URIs.

Lance tables are addressed by URI (Lance's own object store handles ``s3://`` and friends);
every other file goes through fsspec.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any

import fsspec

from modyn_store.core.errors import InvalidArgumentError

__all__ = ["Location", "resolve"]

_OBJECT_SCHEMES = ("s3", "gs", "az", "abfs", "oss")
_MEMORY_ROOTS: dict[str, str] = {}
_MEMORY_LOCK = threading.Lock()


def _memory_root(name: str) -> str:
    """A process-local folder that backs ``memory://name`` (removed at interpreter exit)."""
    with _MEMORY_LOCK:
        root = _MEMORY_ROOTS.get(name)
        if root is None:
            root = tempfile.mkdtemp(prefix="modyn-store-memory-")
            _MEMORY_ROOTS[name] = root
        return root


@atexit.register
def _remove_memory_roots() -> None:
    for root in _MEMORY_ROOTS.values():
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class Location:
    """A resolved store location.

    ``root`` is what Lance receives (a local absolute path or an object-store URI);
    ``fs`` and ``fs_root`` address auxiliary files through fsspec.
    """

    uri: str
    root: str
    is_local: bool
    storage_options: dict[str, Any] = field(default_factory=dict)

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self.is_local:
            return fsspec.filesystem("file")
        fs, _ = fsspec.core.url_to_fs(self.root, **self.storage_options)
        return fs

    def table_uri(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}.lance"

    def path(self, relative: str) -> str:
        """The fsspec path of ``relative`` inside the store."""
        if self.is_local:
            return os.path.join(self.root, relative)
        return f"{self.root.rstrip('/')}/{relative}"


def resolve(uri: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> Location:
    """Resolve a user-given store URI.

    Example
    -------
    >>> resolve("memory://demo").is_local
    True
    """
    if not isinstance(uri, (str, os.PathLike)):
        raise InvalidArgumentError("uri", uri, "a path or a URI string")
    text = os.fspath(uri)
    if not text:
        raise InvalidArgumentError("uri", text, "a non-empty path or URI")
    opts = dict(storage_options or {})
    if text.startswith("memory://"):
        name = text[len("memory://") :].strip("/") or "default"
        return Location(text, _memory_root(name), True, opts)
    if text.startswith("file://"):
        text = text[len("file://") :]
    scheme = text.split("://", 1)[0] if "://" in text else ""
    if scheme and scheme not in _OBJECT_SCHEMES:
        raise InvalidArgumentError(
            "uri", text, f"a local path, memory://NAME or one of {', '.join(s + '://' for s in _OBJECT_SCHEMES)}"
        )
    if scheme:
        return Location(text, text.rstrip("/"), False, opts)
    return Location(text, os.path.abspath(os.path.expanduser(text)), True, opts)
