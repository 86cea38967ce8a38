"""Arrays derived from a local Lance table, kept on disk between processes.

A process keeps what it derives from a table's content in memory (:mod:`._derived`); a fresh
process (a command, a data loader worker, a job's next step) would read the table again. For
the sets a read of a version needs from a small table (the keys tombstoned at or before it),
opening that second Lance table and scanning it costs a fresh process about 2 ms of a 15-20 ms
read of 10^6 keys. This module keeps such arrays in a per-user folder, outside the store:

* the **key** of an entry is the table's absolute path, the bytes of the manifest it was read
  from and what was derived: a manifest lists every data and deletion file of its version
  (uniquely named, never rewritten), so any commit, compaction, erasure or a table made again
  at the same path gives another key and a miss, never a stale hit;
* a **lookup** finds the table's latest manifest (the one Lance would open; see
  :func:`latest_manifest`), reads it, and reads the entry named by the key; the file ends with
  a BLAKE2b digest of the key and its content, so a torn, truncated or damaged file is a miss
  (and written again), not an answer;
* entries are written atomically (a temporary file renamed over the name) by whichever
  process derived the value (or, for the version a delete committed, by the delete, which
  knows the table's content: :mod:`._tombstoned`); each table keeps its
  :data:`ENTRIES_PER_TABLE` most recent, and when a table gets its first entry, the folders of
  tables that no longer exist are removed and at most :data:`MAX_TABLES` tables keep entries;
* the folder's **size** is bounded: after an entry of :data:`LARGE_ENTRY_BYTES` or more is
  written, the least recently written entries of any table are removed until all of them
  together take at most :data:`MAX_TOTAL_BYTES`. Smaller entries do not look (listing every
  table's folder would cost more than they save); the counts above bound them to
  ``MAX_TABLES * ENTRIES_PER_TABLE * LARGE_ENTRY_BYTES`` (2 GiB), so the folder never holds
  much more than 3 GiB.

Only tables on a local disk, with Lance's default manifest naming, and values of at most
:data:`MAX_ENTRY_BYTES` are kept. The folder is ``$MODYN_STORE_READ_CACHE`` (``off`` turns
keeping off), else ``$XDG_CACHE_HOME/modyn_store/reads`` or ``~/.cache/modyn_store/reads``.
Anyone who can write that folder can change what reads answer, as with the store itself.

Example
-------
>>> import os, tempfile, lance, numpy as np, pyarrow as pa
>>> os.environ["MODYN_STORE_READ_CACHE"] = tempfile.mkdtemp()
>>> uri = tempfile.mkdtemp() + "/t.lance"
>>> ds = lance.write_dataset(pa.table({"key": [3, 1, 2]}), uri)
>>> manifest = latest_manifest(uri)
>>> save(uri, manifest, "sorted", (np.array([1, 2, 3]),))
>>> [a.tolist() for a in load(uri, latest_manifest(uri), "sorted")]
[[1, 2, 3]]
>>> _ = lance.write_dataset(pa.table({"key": [4]}), uri, mode="append")
>>> load(uri, latest_manifest(uri), "sorted") is None  # another manifest: a miss
True
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from modyn_store.core._plainjson import read_json

__all__ = [
    "ENTRIES_PER_TABLE", "ENV", "LARGE_ENTRY_BYTES", "MAX_ENTRY_BYTES", "MAX_TABLES", "MAX_TOTAL_BYTES", "folder",
    "latest_manifest", "load", "manifest_name", "save", "table_folder",
]

#: the environment variable naming the folder (``off``: keep nothing)
ENV = "MODYN_STORE_READ_CACHE"
#: the largest value kept (beyond it a table read is a small part of the read that needs it)
MAX_ENTRY_BYTES = 64 << 20
#: entries kept per table, most recently written first
ENTRIES_PER_TABLE = 8
#: tables with entries, most recently written first (those of removed tables go first)
MAX_TABLES = 256
#: the bytes all entries may take together, enforced when an entry of LARGE_ENTRY_BYTES is written
MAX_TOTAL_BYTES = 1 << 30
#: an entry at least this large makes its writer bound the folder's size (see the module docstring)
LARGE_ENTRY_BYTES = 1 << 20
_MAGIC = b"MSKEPT1\n"
_DIGEST = 32
_V2_DIGITS = 20


def folder() -> Path | None:
    """The folder entries are kept in, or ``None`` when keeping is off."""
    env = os.environ.get(ENV)
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "false", "no") else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "modyn_store" / "reads"


def latest_manifest(table_dir: str | os.PathLike[str]) -> bytes | None:
    """The bytes of the latest manifest of the local Lance table at ``table_dir`` (the one
    ``lance.dataset`` opens), or ``None`` when there is none or the folder holds manifests
    named otherwise than Lance's default (version counted down from 2^64 - 1).

    Versions are numbered 1, 2, 3 ... without gaps and cleanups remove only old ones, so from a
    manifest known to exist the latest is found by stepping to the next until none exists:
    from the version this process found last, else from Lance's hint file, else by listing
    the folder (a table with thousands of versions is not listed on every read).
    """
    versions = os.path.join(table_dir, "_versions")
    start = _LAST.get(versions)
    if start is None:
        start = _hinted(versions)
    if start is not None and os.path.exists(_v2_path(versions, start)):
        v = start
        while os.path.exists(_v2_path(versions, v + 1)):
            v += 1
        try:
            with open(_v2_path(versions, v), "rb") as fh:
                data = fh.read()
            _LAST[versions] = v
            return data
        except OSError:  # removed by a cleanup meanwhile: list the folder
            pass
    try:
        names = os.listdir(versions)
    except OSError:
        return None
    best: str | None = None
    for name in names:
        if not name.endswith(".manifest"):
            continue
        stem = name[: -len(".manifest")]
        if len(stem) != _V2_DIGITS or not stem.isdigit():
            return None  # another naming: which is latest is Lance's to say
        if best is None or stem < best:
            best = stem
    if best is None:
        return None
    try:
        with open(os.path.join(versions, best + ".manifest"), "rb") as fh:
            data = fh.read()
    except OSError:  # removed by a cleanup since the listing
        return None
    _LAST[versions] = (1 << 64) - 1 - int(best)
    return data


#: per ``_versions`` folder, the latest version this process found
_LAST: dict[str, int] = {}


def manifest_name(version: int) -> str:
    """The file name of a Lance manifest of ``version`` (v2 paths, Lance's default: the
    version counted down from 2^64 - 1, so that the latest sorts first)."""
    return f"{(1 << 64) - 1 - version:0{_V2_DIGITS}d}.manifest"


def _v2_path(versions: str, version: int) -> str:
    return os.path.join(versions, manifest_name(version))


def _hinted(versions: str) -> int | None:
    """The version in Lance's ``latest_version_hint.json`` (possibly behind), if readable."""
    try:
        with open(os.path.join(versions, "latest_version_hint.json"), "rb") as fh:
            got = read_json(fh.read()).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return got if isinstance(got, int) and got >= 1 else None


def table_folder(table_dir: str | os.PathLike[str]) -> Path | None:
    """The subfolder holding the entries of the table at ``table_dir`` (``None``: keeping is off)."""
    root = folder()
    if root is None:
        return None
    return root / hashlib.sha256(os.path.realpath(table_dir).encode()).hexdigest()[:24]


def _paths(table_dir: str | os.PathLike[str], manifest: bytes, what: str) -> tuple[Path, Path, bytes] | None:
    sub = table_folder(table_dir)
    if sub is None:
        return None
    key = hashlib.sha256(b"\0".join([os.path.realpath(table_dir).encode(), manifest, what.encode()])).digest()
    return sub, sub / (key.hex()[:48] + ".kept"), key


def load(table_dir: str | os.PathLike[str], manifest: bytes | None, what: str) -> tuple[np.ndarray, ...] | None:
    """The arrays saved for ``what`` of the table's content named by ``manifest`` (read-only
    int64 arrays, in the order saved), or ``None``."""
    if manifest is None:
        return None
    paths = _paths(table_dir, manifest, what)
    if paths is None:
        return None
    _, path, key = paths
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    if len(data) < len(_MAGIC) + 8 + _DIGEST or not data.startswith(_MAGIC):
        return None
    body = memoryview(data)[:-_DIGEST]  # (no copy)
    if _digest(key, body) != data[-_DIGEST:]:
        return None
    (count,) = struct.unpack_from("<Q", body, len(_MAGIC))
    at = len(_MAGIC) + 8
    if count > 64 or len(body) < at + 8 * count:
        return None
    sizes = struct.unpack_from(f"<{count}Q", body, at)
    at += 8 * count
    if len(body) != at + 8 * sum(sizes):
        return None
    out = []
    for n in sizes:
        a = np.frombuffer(body, "<i8", count=n, offset=at).astype(np.int64, copy=False)
        at += 8 * n
        out.append(a)
    return tuple(out)


def save(table_dir: str | os.PathLike[str], manifest: bytes | None, what: str, arrays: Sequence[np.ndarray],
         *, make: bool = True) -> None:
    """Keep ``arrays`` (integer arrays) as ``what`` of the table's content named by
    ``manifest``. Nothing is kept when keeping is off, the value is too large, the folder
    cannot be written (a read-only home, a full disk), or (``make=False``) the table has no
    folder of entries yet: the entry only saves a later read time."""
    if manifest is None:
        return
    paths = _paths(table_dir, manifest, what)
    if paths is None or sum(int(a.size) for a in arrays) * 8 > MAX_ENTRY_BYTES:
        return
    sub, path, key = paths
    parts = [_MAGIC, struct.pack(f"<Q{len(arrays)}Q", len(arrays), *(int(a.size) for a in arrays))]
    parts += [np.ascontiguousarray(a, dtype="<i8").tobytes() for a in arrays]
    body = b"".join(parts)
    try:
        if not sub.is_dir():
            if not make:
                return
            # the folder is per user: folders 0700, files 0600 (mkstemp's mode), whatever the umask
            sub.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            sub.mkdir(exist_ok=True, mode=0o700)
            fd = os.open(sub / "table", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(os.path.realpath(table_dir))  # (what _prune checks)
            _prune(sub.parent, keep=sub)
        else:
            _private(sub)
        fd, tmp = tempfile.mkstemp(dir=sub, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
                fh.write(_digest(key, body))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _trim(sub)
        if len(body) >= LARGE_ENTRY_BYTES:
            _bound_total(sub.parent, keep=path)
    except OSError:
        return  # (only a later read's time is lost; what was derived is returned either way)


def _private(sub: Path) -> None:
    """Make a table's folder and its ``table`` file the user's alone where an earlier release
    left them readable by others (it made them by the umask). The cache folder itself is left
    as it is: the user may have chosen it (``MODYN_STORE_READ_CACHE``), shared or not theirs."""
    for p, mode in ((sub, 0o700), (sub / "table", 0o600)):
        try:
            if os.stat(p).st_mode & 0o077:
                os.chmod(p, mode)
        except OSError:
            pass  # (gone meanwhile, or not the user's: the entry is still kept where it can be)


def _prune(root: Path, keep: Path) -> None:
    """Remove the subfolders of tables that no longer exist, and the least recently written
    beyond :data:`MAX_TABLES` (run when a table gets its first entry)."""
    subs = []
    for sub in root.iterdir():
        if sub == keep or not sub.is_dir():
            continue
        try:
            gone = not os.path.exists((sub / "table").read_text(encoding="utf-8"))
            mtime = sub.stat().st_mtime_ns
        except (OSError, ValueError):  # (no ``table`` file: a folder being made, or not ours)
            continue
        if gone:
            shutil.rmtree(sub, ignore_errors=True)
        else:
            subs.append((mtime, sub))
    subs.sort(reverse=True)
    for _, sub in subs[MAX_TABLES - 1 :]:
        shutil.rmtree(sub, ignore_errors=True)


def _bound_total(root: Path, keep: Path) -> None:
    """Remove the least recently written entries of any table until all entries take at most
    :data:`MAX_TOTAL_BYTES` (``keep``, the entry just written, stays)."""
    entries = [e for sub in root.iterdir() if sub.is_dir() for e in _listing(sub) if e[2].suffix == ".kept"]
    total = sum(size for _, size, _ in entries)
    entries.sort()
    for _, size, p in entries:
        if total <= MAX_TOTAL_BYTES:
            break
        if p != keep:
            p.unlink(missing_ok=True)
            total -= size


def _digest(key: bytes, body: bytes | memoryview) -> bytes:
    h = hashlib.blake2b(key, digest_size=_DIGEST)
    h.update(body)
    return h.digest()


def _trim(sub: Path) -> None:
    """Keep the table's :data:`ENTRIES_PER_TABLE` most recently written entries (and remove
    temporary files a killed writer left, once they are an hour old)."""
    entries = []
    stale = time.time() - 3600
    for mtime, _, p in _listing(sub):
        if p.suffix == ".kept":
            entries.append((mtime, p))
        elif p.name.startswith(".tmp-") and mtime < stale * 1e9:
            p.unlink(missing_ok=True)
    entries.sort(reverse=True)
    for _, p in entries[ENTRIES_PER_TABLE:]:
        p.unlink(missing_ok=True)


def _listing(sub: Path) -> list[tuple[int, int, Path]]:
    """``(mtime_ns, size, path)`` of each file in a table's folder (files or a folder removed
    meanwhile by another process are left out)."""
    out: list[tuple[int, int, Path]] = []
    try:
        paths = list(sub.iterdir())
    except OSError:
        return out
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((st.st_mtime_ns, st.st_size, p))
    return out
