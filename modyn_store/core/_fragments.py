"""Per-fragment ``_version`` ranges of a table: which fragments a read of a version can skip.

Lance fragments are immutable apart from deletion files, and their ids are never reused, so
a fragment's ``(min _version, max _version, physical rows)`` once known stays a valid bound.
Ranges come from this process's memory, from a side file the writer keeps, or from reading
that fragment's ``_version`` column once. Of a table with a ``key`` column (the samples) the
range of its keys is kept beside them where known, ``(..., min key, max key)``: an append
records the bounds of the keys it wrote for the fragments it created (every key of each lies
between them), a fragment the writer reads (after a merge) its own; readers read
``_version`` only, and no write reads the keys of fragments it did not read anyway (a lost
journal, lines of earlier releases: those fragments have no bounds). A delete by key and a
point read (``take``, ``contains``, ``row_ids`` of a few keys) scan only the fragments whose
bounds hold one of their keys, and every fragment without bounds. A
deletion file only removes rows, so a bound stays a bound. Earlier releases read the first
three numbers of a line and ignore the rest.

The side file ``_meta/<table>.fragments.jsonl`` is a journal: each write appends one line
holding the ranges of the fragments it created (an append to a local file, not a rewrite:
rewriting or renaming a file makes the file system flush it, which costs more than the rest
of a small commit). Lines are read in order, later ones win; a torn line (a writer killed
mid-append, or a reader racing the append) or a damaged one (each line carries a digest of its
ranges) is skipped, and its fragments' columns are read instead. After compactions, and once
the journal is long, the writer rewrites it whole (a temporary file renamed over it). The single-object ``.fragments.json`` of earlier releases
is still read.

Example
-------
>>> import pyarrow as pa
>>> from modyn_store import Store
>>> store = Store.open("memory://fragments-doc", create=True)
>>> _ = store.append(pa.table({"ts": [1, 2]})); _ = store.append(pa.table({"ts": [3]}))
>>> ds = store._tables.open("samples")
>>> sorted(store._tables.fragment_versions("samples", ds).values())
[(1, 1), (2, 2)]
>>> sorted(store._tables.fragment_key_bounds("samples", ds).values())
[(0, 1), (2, 2)]
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import lance
import numpy as np

from modyn_store.core._location import Location
from modyn_store.core._plainjson import read_json
from modyn_store.core._runcheck import digest

__all__ = ["FragmentRanges", "key_spans", "ruled_out"]

#: what is known of a fragment: (min _version, max _version, physical rows), then (min key,
#: max key) where known
Known = tuple[int, ...]


def key_spans(
    bounds: dict[int, tuple[int, int]], want: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, lo, hi, first, last)`` over the fragments whose key bounds are known: the
    ascending keys ``want[first[i]:last[i]]`` are those inside ``[lo[i], hi[i]]``, fragment
    ``ids[i]``'s bounds.

    >>> ids, lo, hi, first, last = key_spans({3: (0, 9), 4: (10, 19)}, np.array([5, 6, 30]))
    >>> first.tolist(), last.tolist()
    ([0, 2], [2, 2])
    """
    ids = np.fromiter(bounds, np.int64, len(bounds))
    lo, hi = np.array(list(bounds.values()), np.int64).reshape(-1, 2).T
    return ids, lo, hi, np.searchsorted(want, lo, side="left"), np.searchsorted(want, hi, side="right")


def ruled_out(bounds: dict[int, tuple[int, int]], want: np.ndarray) -> set[int]:
    """The ids of the fragments whose key bounds hold none of the ascending keys ``want``
    (a fragment without bounds may hold any key: never among them)."""
    if not bounds:
        return set()
    ids, _, _, first, last = key_spans(bounds, want)
    return set(ids[first >= last].tolist())


#: the key of a line's digest (of the line's other keys and values): a damaged line is skipped
DIGEST = "#"
#: the journal is rewritten whole once it is this long (bytes)
REWRITE_BYTES = 1 << 16


class FragmentRanges:
    """The ranges of the tables of one store (see the module docstring)."""

    def __init__(self, location: Location) -> None:
        self.location = location
        self._known: dict[str, dict[int, Known]] = {}
        # fragment ids the journal holds as far as this process knows, and its size
        self._saved: dict[str, set[int]] = {}
        self._size: dict[str, int] = {}
        # the last answer of get() per table: (Lance version, ranges, key bounds where known)
        self._memo: dict[str, tuple[int, dict[int, tuple[int, int]], dict[int, tuple[int, int]]]] = {}

    def _path(self, name: str, suffix: str = ".fragments.jsonl") -> str:
        return self.location.path(_relative(name, suffix))

    def recorded(self, name: str) -> dict[int, Known]:
        """``fragment id -> (min _version, max _version, physical rows[, min key, max key])`` as
        the side files record them (later lines win; torn or damaged lines are skipped), without this process's
        memory: what a reader that has not read those fragments itself goes by."""
        return self._read(name)[0]

    def _read(self, name: str) -> tuple[dict[int, Known], bytes | None]:
        """The side files' ranges, and the journal's bytes (``None``: there is none)."""
        found: dict[int, Known] = {}
        raw = self.location.read(_relative(name, ".fragments.json"))  # earlier releases: one object
        lines = [raw] if raw else []
        journal = self.location.read(_relative(name, ".fragments.jsonl"))
        if journal is not None:
            lines.extend(journal.split(b"\n"))
        for line in lines:
            if not line.strip():
                continue
            try:
                body = _decode(line)
                found.update({int(k): _known(v) for k, v in body.items()})
            except (ValueError, KeyError, TypeError, IndexError, AttributeError):
                continue  # torn or damaged: those fragments' columns are read instead
        return found, journal

    def _load(self, name: str) -> None:
        """Merge the side files' ranges into memory (memory wins: it was read from the data)."""
        found, journal = self._read(name)
        known = self._known.setdefault(name, {})
        for fid, hit in found.items():
            known.setdefault(fid, hit)
        self._saved[name] = set(found) if journal is not None else set()
        self._size[name] = len(journal) if journal is not None else 0

    def get(
        self, name: str, ds: lance.LanceDataset, *, assume: int | None = None, created_after: int = -1,
        keys: tuple[int, int] | None = None, read_keys: bool = False,
    ) -> dict[int, tuple[int, int]]:
        """``fragment id -> (min _version, max _version)`` for every fragment of ``ds``.

        With ``assume``, unknown fragments with an id above ``created_after`` are taken to
        hold only version ``assume`` (the writer's own, just appended) without reading them,
        and ``keys`` (the smallest and largest key the writer wrote), if given, as their keys'
        bounds. A fragment read here gives its keys' bounds too where ``read_keys`` (the writer,
        which records them; a reader reads ``_version`` only).

        The answer for the Lance version last asked about is kept: a Lance version of a table
        never changes its fragments (a new commit is a new version), so a writer's check at
        the start of its write, its delete's scan and the readers between two writes do not
        walk the fragment list again.
        """
        return dict(self._get(name, ds, assume, created_after, keys, read_keys)[1])

    def key_bounds(self, name: str, ds: lance.LanceDataset) -> dict[int, tuple[int, int]]:
        """``fragment id -> (min key, max key)`` for the fragments of ``ds`` whose key bounds
        memory or the journal records (every key of the fragment lies between them; the rest
        have none here). Reads no fragment and remembers nothing of the others: a reader would
        read ``_version`` only, which gives no bounds, and a writer's fragments not yet
        committed (a streamed append checking its keys) must stay unknown for its commit to
        record their bounds."""
        memo = self._memo.get(name)
        if memo is not None and memo[0] == ds.version:
            return dict(memo[2])
        return {fid: (hit[3], hit[4]) for fid, hit in self._recorded_hits(name, ds).items() if len(hit) == 5}

    def recorded_versions(self, name: str, ds: lance.LanceDataset) -> dict[int, tuple[int, int]]:
        """``fragment id -> (min _version, max _version)`` for the fragments of ``ds`` whose
        ranges memory or the journal records; like :meth:`key_bounds`, reads no fragment and
        remembers nothing of the others (a writer's own fragments stay unknown)."""
        memo = self._memo.get(name)
        if memo is not None and memo[0] == ds.version:
            return dict(memo[1])
        return {fid: (hit[0], hit[1]) for fid, hit in self._recorded_hits(name, ds).items()}

    def _recorded_hits(self, name: str, ds: lance.LanceDataset) -> dict[int, Known]:
        """What memory or the journal records of the fragments of ``ds`` (those whose recorded
        row count is the fragment's)."""
        frags = [(f.fragment_id, f.physical_rows) for f in ds.get_fragments()]
        known = self._known.get(name)
        if known is None or any(fid not in known for fid, _ in frags):
            self._load(name)  # another process may have recorded them
            known = self._known[name]
        return {fid: hit for fid, rows in frags if (hit := known.get(fid)) is not None and hit[2] == rows}

    def _get(
        self, name: str, ds: lance.LanceDataset, assume: int | None, created_after: int, keys: tuple[int, int] | None,
        read_keys: bool,
    ) -> tuple[int, dict[int, tuple[int, int]], dict[int, tuple[int, int]]]:
        memo = self._memo.get(name)
        if memo is not None and memo[0] == ds.version:
            return memo
        frags = [(f.fragment_id, f.physical_rows, f) for f in ds.get_fragments()]
        known = self._known.get(name)
        if known is None or any(
            fid not in known and (assume is None or fid <= created_after) for fid, _, _ in frags
        ):
            self._load(name)  # another process may have recorded them
            known = self._known[name]
        out: dict[int, tuple[int, int]] = {}
        bounds: dict[int, tuple[int, int]] = {}
        keyed = "key" in ds.schema.names
        for fid, rows, frag in frags:
            hit = known.get(fid)
            if hit is None or hit[2] != rows:
                if assume is not None and fid > created_after:
                    hit = (assume, assume, rows, *(keys if keys is not None and keyed else ()))
                else:
                    hit = _read_fragment(frag, rows, keyed and read_keys)
                known[fid] = hit
            out[fid] = (hit[0], hit[1])
            if len(hit) == 5:
                bounds[fid] = (hit[3], hit[4])
        self._memo[name] = memo = (ds.version, out, bounds)
        return memo

    def forget(self, name: str) -> None:
        """Drop what memory holds of ``name`` (its folder was removed)."""
        self._known.pop(name, None)
        self._memo.pop(name, None)
        self._saved.pop(name, None)
        self._size.pop(name, None)

    def files(self, name: str) -> list[str]:
        """The paths of ``name``'s side files that exist."""
        suffixes = (".fragments.jsonl", ".fragments.json")
        return [self._path(name, x) for x in suffixes if self.location.exists(_relative(name, x))]

    def save(
        self,
        name: str,
        ds: lance.LanceDataset,
        *,
        new_version: int | None = None,
        created_after: int = -1,
        rewrite: bool = False,
        keys: tuple[int, int] | None = None,
    ) -> None:
        """Record the ranges of ``ds``'s fragments that the side file lacks (the writer's call).

        ``new_version``/``created_after``/``keys`` as in :meth:`get`. ``rewrite`` (after
        fragments were replaced) writes the file whole, without the ranges of fragments gone.
        """
        ranges = self.get(name, ds, assume=new_version, created_after=created_after, keys=keys, read_keys=True)
        known = self._known[name]
        if name not in self._saved:
            self._load(name)
        saved = self._saved[name]
        missing = [fid for fid in ranges if fid not in saved]
        if not missing and not rewrite:
            return
        if rewrite or self._size.get(name, 0) > REWRITE_BYTES:
            body = _encode({str(fid): list(known[fid]) for fid in ranges})
            self._replace(name, body)
            self._saved[name] = set(ranges)
            self._size[name] = len(body)
            return
        line = b"\n" + _encode({str(fid): list(known[fid]) for fid in missing})
        self._append(_relative(name, ".fragments.jsonl"), line)
        saved.update(missing)
        self._size[name] = self._size.get(name, 0) + len(line)

    def _append(self, relative: str, line: bytes) -> None:
        path = self.location.path(relative)
        if self.location.is_local:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
            return
        # objects cannot be appended to: read, extend, put (a put is atomic)
        old = self.location.read(relative) or b""
        self.location.fs.pipe_file(path, old + line)

    def _replace(self, name: str, body: bytes) -> None:
        path = self._path(name)
        fs: Any = self.location.fs
        if self.location.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(body)
            os.replace(tmp, path)
        else:
            fs.pipe_file(path, body)
        if self.location.exists(_relative(name, ".fragments.json")):
            fs.rm(self._path(name, ".fragments.json"))


def _known(v: Any) -> Known:
    """One fragment's entry of a line: three numbers, or five with its keys' bounds (a line of
    another length is damaged: ``ValueError``)."""
    if len(v) not in (3, 5):
        raise ValueError(f"a fragment entry of {len(v)} numbers")
    return tuple(int(x) for x in v)


def _read_fragment(frag: Any, rows: int, keyed: bool) -> Known:
    """What one read of ``frag``'s ``_version`` (and ``key``, where ``keyed``) columns gives."""
    t = frag.to_table(columns=["_version", "key"] if keyed else ["_version"])
    col = t.column(0).to_numpy()
    if not col.size:
        return (0, -1, rows)
    if not keyed:
        return (int(col.min()), int(col.max()), rows)
    k = t.column(1).to_numpy()
    return (int(col.min()), int(col.max()), rows, int(k.min()), int(k.max()))


def _encode(ranges: dict[str, list[int]]) -> bytes:
    """One line of the journal: the ranges and a digest of them (key ``#``)."""
    body = json.dumps(ranges)
    return json.dumps({**ranges, DIGEST: digest(body.encode())}).encode()


def _decode(line: bytes) -> dict[str, Any]:
    """The ranges of one line; ``ValueError`` for a line whose digest does not match (a
    damaged line: a changed digit would still parse). Lines of earlier releases have none."""
    body = read_json(line)
    if isinstance(body, dict) and DIGEST in body:
        given = body.pop(DIGEST)
        if given != digest(json.dumps(body).encode()):
            raise ValueError("the line's digest does not match")
    return body  # type: ignore[no-any-return]


def _relative(name: str, suffix: str) -> str:
    return f"_meta/{name.replace('/', '__')}{suffix}"
