"""Drop Numba's on-disk kernel caches of this package when any of its source files changed.

Numba checks a cached kernel (``cache=True``) only against the file that defines it (and the
function's own bytecode). A kernel that inlines a function or reads a constant from another module
(``engine._random``, ``engine._rank``, ``engine._blocks``, ...) keeps its old machine code when only
that other module changes, for instance after checking out another commit: silently different
hashes and selections. Numba documents this limitation and offers no dependency tracking.

So on import the package compares its ``*.py`` files (names, sizes and modification times; their
contents when those differ) with a stamp file beside the caches, in every directory where Numba may
keep them (:func:`cache_dirs`). When the contents differ it deletes the package's index (``*.nbi``)
and data (``*.nbc``) files there and then writes the new stamp; Numba recompiles on next use.
Numba's own index already carries Numba's version, so an upgrade needs nothing here.

Concurrency: another process may be reading an index or data file while it is deleted. Numba opens
each file once and reads it whole, treats a missing index as empty and a missing data file as a
cache miss, and writes through a temporary file renamed into place (never deleted here), so the
worst outcome is a recompilation. A directory that is read-only is left as it is (Numba does not
use such a directory either). With unchanged files an import costs one ``stat`` per source file
and one small read.
"""

from __future__ import annotations

import os
import sys
import time

__all__ = ["STAMP_NAME", "cache_dirs", "drop_stale_caches", "source_fingerprint"]

STAMP_NAME = "engine-sources.stamp"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_CACHE_SUFFIXES = (".nbi", ".nbc")
_RACY_NS = 3_000_000_000  # coarsest common file time resolution (2 s, FAT) plus a margin


def source_fingerprint(package_dir: str = _PACKAGE_DIR) -> str:
    """SHA-256 over the names and contents of the package's ``*.py`` files, in name order."""
    import hashlib  # here: most imports stop at the stat check (see cache_dirs)

    h = hashlib.sha256()
    for name in sorted(n for n in os.listdir(package_dir) if n.endswith(".py")):
        with open(os.path.join(package_dir, name), "rb") as f:
            data = f.read()
        h.update(b"%s\0%d\0" % (name.encode(), len(data)))
        h.update(data)
    return h.hexdigest()


def _stat_key(package_dir: str) -> bytes:
    """Name, size and modification time of each ``*.py`` file, for the fast path; empty while a file
    is younger than the timestamp resolution of some file systems (an edit in the same tick could
    keep size and time: such a key is not trusted, as git does with "racy" index entries)."""
    with os.scandir(package_dir) as it:
        stats = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in it if e.name.endswith(".py"))
    if any(mtime > time.time_ns() - _RACY_NS for _, _, mtime in stats):
        return b""
    return repr(stats).encode()


def _user_cache_root() -> str:
    """Numba's ``AppDirs("numba", appauthor=False).user_cache_dir`` (``numba.misc.appdirs``)."""
    if sys.platform == "win32":
        return os.path.join(os.path.normpath(os.environ.get("LOCALAPPDATA", "")), "numba", "Cache")
    if sys.platform == "darwin":
        return os.path.join(os.path.expanduser("~/Library/Caches"), "numba")
    return os.path.join(os.getenv("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "numba")


def cache_dirs(package_dir: str = _PACKAGE_DIR) -> list[str]:
    """The directories where Numba's locators (``numba.core.caching``) may cache the kernels of
    ``package_dir``: ``__pycache__``, ``$NUMBA_CACHE_DIR/<subpath>`` when set, and the user-wide
    ``<subpath>`` when ``__pycache__`` is not writable (``<subpath>``: ``<dir name>_<sha1 of dir>``)."""
    config = sys.modules.get("numba.core.config")  # loaded: its CACHE_DIR may come from a file or code
    user_dir = getattr(config, "CACHE_DIR", None) if config is not None else None
    if user_dir is None:
        user_dir = os.environ.get("NUMBA_CACHE_DIR", "")
    in_tree = os.path.join(package_dir, "__pycache__")
    roots = [user_dir] if user_dir else []
    if not os.access(in_tree if os.path.isdir(in_tree) else package_dir, os.W_OK):
        roots.append(_user_cache_root())
    if not roots:
        return [in_tree]
    import hashlib  # only here and in source_fingerprint: hashlib costs ~2 ms to load

    subpath = f"{os.path.basename(package_dir)}_{hashlib.sha1(package_dir.encode()).hexdigest()}"
    return [in_tree] + [os.path.join(root, subpath) for root in roots]


def _read_stamp(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # missing or unreadable: no stamp (a read-only directory stays as it is below)
        return None


def _write_stamp(cache_dir: str, stamp: bytes) -> None:
    tmp = os.path.join(cache_dir, f"{STAMP_NAME}.tmp.{os.urandom(8).hex()}")
    try:
        with open(tmp, "wb") as f:
            f.write(stamp)
        os.replace(tmp, os.path.join(cache_dir, STAMP_NAME))
    except OSError:  # read-only directory: leave it unstamped (and checked again next time)
        try:
            os.unlink(tmp)
        except OSError:  # the temporary file was never created
            pass


def _drop(cache_dir: str) -> bool:
    """Delete the cache files of one directory; False if some could not be (read-only directory)."""
    try:
        names = os.listdir(cache_dir)
    except OSError:  # the directory vanished or cannot be listed: nothing Numba could load either
        return False
    for name in names:
        if name.endswith(_CACHE_SUFFIXES):
            try:
                os.unlink(os.path.join(cache_dir, name))
            except FileNotFoundError:  # another process removed it first
                pass
            except OSError:  # read-only directory (Numba will not use it) or a file in use
                return False
    return True


def drop_stale_caches(package_dir: str = _PACKAGE_DIR) -> None:
    """Delete the package's cached kernels wherever they predate its current sources.

    A stamp is ``<content fingerprint>\\n<stat key>``: when the stat key matches nothing is read;
    when only it differs (files touched, same contents) the stamp is renewed and the caches kept.
    """
    key: bytes | None = None
    content: bytes | None = None
    for cache_dir in cache_dirs(package_dir):
        if not os.path.isdir(cache_dir):
            try:  # created and stamped now, as Numba would create it: else its first caches,
                os.makedirs(cache_dir, exist_ok=True)  # unstamped, would be dropped once
            except OSError:  # a read-only parent: Numba cannot use this directory either
                continue
        if not os.access(cache_dir, os.W_OK):
            continue  # read-only: Numba neither reads nor writes caches there
        key = _stat_key(package_dir) if key is None else key
        old_content, _, old_key = (_read_stamp(os.path.join(cache_dir, STAMP_NAME)) or b"").partition(b"\n")
        if key and old_key == key:
            continue
        content = source_fingerprint(package_dir).encode() if content is None else content
        if old_content == content and old_key == key:
            continue  # same contents, files too young to trust their times: nothing to renew
        if old_content == content or _drop(cache_dir):
            _write_stamp(cache_dir, content + b"\n" + key)
