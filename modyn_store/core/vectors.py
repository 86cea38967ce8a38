"""Vector search over per-sample embeddings as of a store version, on LanceDB.

Embeddings are a vector score (``store.scores.write("embedding", keys, matrix)``), so they are
versioned like every score. :meth:`VectorIndex.from_store` builds an index over the latest
embedding of every key live at a version: exact (a NumPy brute force) for small sets, otherwise a
LanceDB table with an IVF-PQ index (or IVF-HNSW-SQ) whose candidates are re-ranked by exact
distance (``refine_factor``). :meth:`VectorIndex.from_arrays` indexes embeddings held in memory
(e.g. a scoring pass's). :func:`snapshot_table` copies a snapshot into a LanceDB table for ad-hoc
SQL, vector or full-text queries as of its version.

The index is a derived cache outside the store (a temporary folder unless ``uri`` is given): an
embedding written after its version is not in it, and every answer drops keys that are no longer
live at that version (erased after the index was built). Erasure removes the bytes from the store,
not from such a cache: close the index (or rebuild it) after an erasure. A local ``uri`` in a
store's folder (or below it) is refused: the store would read the table as one of its own.

Builds into the same ``uri`` and table name are serialised across threads and processes by a lock
file in ``uri`` (a local folder); a build that waits longer than ``lock_timeout`` seconds raises
:class:`~modyn_store.core.errors.ConflictError`, as does a clash LanceDB detects on other URIs.
Each index answers from the table version it built, so a later build into the same table never
changes an earlier index's answers. A build that fails removes its temporary folder. A process
killed outright (``SIGKILL``) cannot: each temporary folder names its owner process, and the next
build without ``uri`` removes the folders of owners on this host that are no longer running
(never a live process's, never another host's). A closed index raises
:class:`~modyn_store.core.errors.ClosedError`.

Example
-------
>>> import numpy as np, pyarrow as pa
>>> from modyn_store import Store
>>> from modyn_store.core.vectors import VectorIndex
>>> store = Store.open("memory://vectors-doc", create=True)
>>> _ = store.append(pa.table({"ts": [0, 1, 2]}))
>>> _ = store.scores.write("embedding", [0, 1, 2], np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]]))
>>> index = VectorIndex.from_store(store, "embedding")
>>> keys, dist = index.search(np.array([[0.9, 0.1]]), k=2)
>>> keys.tolist(), index.kind
([[1, 0]], 'exact')
"""

from __future__ import annotations

import os
import re
import shutil
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from engine._search import sorted_unique
from modyn_store.core._knn import ExactKnn
from modyn_store.core._lock import WriterLock
from modyn_store.core._marker import MARKER
from modyn_store.core._tempowner import owned_tempdir, sweep_stale
from modyn_store.core._validate import as_array, check_float, check_int, check_int_or_none
from modyn_store.core.errors import ClosedError, ConflictError, InvalidArgumentError

__all__ = ["VectorIndex", "snapshot_table"]

#: the prefix of the temporary folders of indexes built without a ``uri``
_TEMP_PREFIX = "modyn-vectors-"

Kind = Literal["auto", "exact", "ivf_pq", "hnsw"]
KINDS = ("auto", "exact", "ivf_pq", "hnsw")
# what Lance says when another writer committed to the same table first
_LANCE_CONFLICTS = ("Incompatible transaction", "Retryable commit conflict", "Commit conflict",
                    "already exists")
# LanceDB computes float32 squared distances and drops rows whose distance overflows: a query
# that may reach this distance is answered by an exact float64 search instead
_F32_FAR = 1e37
#: the table names LanceDB accepts
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _local_dir(uri: str) -> str | None:
    """The folder of a local LanceDB ``uri`` (a path or ``file://``), else ``None``."""
    if uri.startswith("file://"):
        return uri[len("file://"):]
    return None if "://" in uri else uri


def _refuse_store_folder(uri: str, folder: str) -> None:
    """Refuse a local ``uri`` in a store's folder (or below it): the store reads a table there as
    one of its own, so a table named like one of the store's (``samples``) replaces it, and the
    store's erase, compact and vacuum rewrite or remove the others' files."""
    path = os.path.abspath(folder)
    while True:
        if os.path.isfile(os.path.join(path, MARKER)):
            raise InvalidArgumentError("uri", uri, f"a folder outside every store (it lies in the store {path!r})")
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


@contextmanager
def _build_lock(uri: str, name: str, timeout: float) -> Iterator[None]:
    """Hold the build lock of table ``name`` in the local folder ``uri`` (no lock elsewhere)."""
    if not isinstance(name, str) or _TABLE_NAME.fullmatch(name) is None:
        # checked before the lock file is made: its name holds the table's, and a name such as
        # "./../x" would make it outside ``uri``
        raise InvalidArgumentError("name", name, "a LanceDB table name: letters, digits, '_', '-' and '.'")
    folder = _local_dir(uri)
    if folder is None:
        yield
        return
    _refuse_store_folder(uri, folder)
    os.makedirs(folder, exist_ok=True)
    try:
        lock = WriterLock(os.path.join(folder, f".{name}.build-lock"), timeout).__enter__()
    except ConflictError:
        raise ConflictError(f"another build of vector table {name!r} in {uri!r} held it for "
                            f"{timeout:.1f} s; retry, or raise lock_timeout") from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


@contextmanager
def _building(uri: str, name: str, timeout: float) -> Iterator[None]:
    """Hold the build lock of table ``name`` in ``uri``; a commit clash Lance detects (where no
    lock can be taken, or a writer that takes none) becomes :class:`ConflictError`."""
    with _build_lock(uri, name, timeout):
        try:
            yield
        except Exception as exc:
            if any(s in str(exc) for s in _LANCE_CONFLICTS):
                raise ConflictError(f"another process wrote LanceDB table {name!r} in {uri!r} "
                                    "at the same time; retry") from exc
            raise


def _array(name: str, values: Any) -> np.ndarray:
    """``values`` as an array; ragged rows and masked entries raise ``InvalidArgumentError`` naming ``name``."""
    return as_array(values, name=name, expected="a [n, d] matrix of numbers (no masked entries)")


def _matrix(values: Any, n: int) -> np.ndarray:
    """``values`` as a C-contiguous float32 ``[n, d]`` matrix (``d >= 1``), else
    ``InvalidArgumentError`` naming ``vectors``."""
    if isinstance(values, (pa.ChunkedArray, pa.Array)):
        col = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        if not pa.types.is_fixed_size_list(col.type) or not (
                pa.types.is_floating(col.type.value_type) or pa.types.is_integer(col.type.value_type)):
            raise InvalidArgumentError("embedding", str(col.type), "a vector score (fixed-size list of floats)")
        if col.null_count:  # flatten() skips a null vector: the rest no longer lines up with the keys
            raise InvalidArgumentError("vectors", f"{col.null_count} null vectors", "one vector per key")
        if len(col) != n or col.type.list_size == 0:
            raise InvalidArgumentError("vectors", f"{len(col)} vectors of {col.type.list_size} values",
                                       f"{n} vectors (one per key) of at least one value")
        flat = col.flatten().to_numpy(zero_copy_only=False)
        return np.ascontiguousarray(flat.reshape(n, col.type.list_size), dtype=np.float32)
    raw = _array("vectors", values)
    if raw.dtype.kind not in "biuf":
        raise InvalidArgumentError("vectors", str(raw.dtype), "numeric (float) vectors")
    if raw.ndim != 2 or raw.shape[0] != n or raw.shape[1] == 0:
        raise InvalidArgumentError("vectors", raw.shape, f"a [{n}, d] float matrix with d >= 1")
    with np.errstate(over="ignore"):  # beyond float32's range: refused as non-finite below
        return np.ascontiguousarray(raw, dtype=np.float32)


@dataclass
class VectorIndex:
    """Nearest-neighbour search over ``(key, vector)`` pairs (squared L2 distances).

    Build with :meth:`from_store` or :meth:`from_arrays`. ``kind="auto"`` is exact below
    ``exact_below`` vectors and IVF-PQ above (any kind is exact below 256 vectors, too few to
    train partitions, and for vectors of norm above about ``1.5e18``, whose float32 distances
    may overflow; ``kind`` then reads ``"exact"``). A query far enough from the vectors for a
    float32 distance to overflow is searched exactly (LanceDB would drop its neighbours).
    ``nprobes`` (partitions searched, >= 1) and ``refine_factor`` (>= 0; ``refine_factor * k`` candidates re-ranked by exact
    distance, 0: none, the distances are then the index's approximations) trade recall for
    speed on the approximate kinds; ``num_partitions`` (>= 1) and ``num_sub_vectors`` (>= 1,
    a divisor of the dimension; IVF-PQ only) shape the index. Other values are refused with
    ``InvalidArgumentError`` naming the option, before anything is written to ``uri``.
    ``lock_timeout`` (seconds, >= 0) bounds the wait for another build of the same table in
    ``uri``. After :meth:`close` (also on leaving a ``with`` block) ``search`` and ``vectors``
    raise :class:`~modyn_store.core.errors.ClosedError`.
    """

    keys: np.ndarray
    dim: int
    kind: str
    version: int | None = None
    nprobes: int = 32
    refine_factor: int = 10
    _store: Any = field(default=None, repr=False)
    _base: np.ndarray | None = field(default=None, repr=False)
    _knn: ExactKnn | None = field(default=None, repr=False)
    _table: Any = field(default=None, repr=False)
    _dir: str | None = field(default=None, repr=False)
    _cleanup: Any = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)
    _reach: float = field(default=0.0, repr=False)
    build_seconds: float = 0.0

    @classmethod
    def from_arrays(cls, keys: Any, vectors: Any, *, kind: Kind = "auto", exact_below: int = 50_000,
                    uri: str | os.PathLike[str] | None = None, num_partitions: int | None = None,
                    num_sub_vectors: int | None = None, nprobes: int = 32, refine_factor: int = 10,
                    lock_timeout: float = 600.0, _store: Any = None,
                    _version: int | None = None) -> VectorIndex:
        """Index ``vectors[i]`` under ``keys[i]`` (keys unique)."""
        import time

        if kind not in KINDS:
            raise InvalidArgumentError("kind", kind, f"one of {list(KINDS)}")
        exact_below = check_int("exact_below", exact_below, 0)
        nprobes, refine_factor = check_int("nprobes", nprobes, 1), check_int("refine_factor", refine_factor, 0)
        num_partitions = check_int_or_none("num_partitions", num_partitions, 1)
        num_sub_vectors = check_int_or_none("num_sub_vectors", num_sub_vectors, 1)
        lock_timeout = check_float("lock_timeout", lock_timeout, 0.0)
        if uri is not None and not isinstance(uri, (str, os.PathLike)):
            raise InvalidArgumentError("uri", uri, "a folder path or LanceDB URI, or None")
        raw_keys = as_array(keys, name="keys", expected="integer keys")
        if raw_keys.size and raw_keys.dtype.kind not in "iu":
            raise InvalidArgumentError("keys", str(raw_keys.dtype), "integer keys")
        k = raw_keys.astype(np.int64)
        if k.ndim != 1 or sorted_unique(k).size != k.size:
            raise InvalidArgumentError("keys", "duplicates or not 1-D", "unique int64 keys")
        m = _matrix(vectors, k.size)
        if not np.isfinite(m).all():
            raise InvalidArgumentError("vectors", "non-finite values", "finite embeddings")
        if num_sub_vectors is not None and m.shape[1] % num_sub_vectors:
            raise InvalidArgumentError("num_sub_vectors", num_sub_vectors,
                                       f"a divisor of the vectors' dimension {m.shape[1]}")
        t0 = time.perf_counter()
        chosen = ("exact" if k.size < exact_below else "ivf_pq") if kind == "auto" else kind
        idx = cls(keys=k, dim=int(m.shape[1]), kind=chosen, version=_version, nprobes=nprobes,
                  refine_factor=refine_factor, _store=_store)
        reach = float(np.sqrt(np.einsum("ij,ij->i", m, m, dtype=np.float64)).max()) if k.size else 0.0
        # too few rows to train partitions, or float32 distances between rows may overflow
        # (LanceDB's training then fails or drops rows): exact is exact
        if chosen == "exact" or k.size < 256 or (2 * reach) ** 2 > _F32_FAR:
            idx.kind = "exact"
            idx._base = m
            idx._knn = ExactKnn(m)
        else:
            idx._reach = reach
            idx._build_lancedb(m, None if uri is None else os.fspath(uri), num_partitions, num_sub_vectors,
                               lock_timeout)
        idx.build_seconds = time.perf_counter() - t0
        return idx

    @classmethod
    def from_store(cls, store: Any, name: str = "embedding", version: Any = None, **options: Any) -> VectorIndex:
        """Index the latest ``name`` embedding of every key live at ``version`` (default: latest)."""
        snap = store.as_of(version)
        t = store.scores.as_of(snap.version, name)
        keys = t.column("key").to_numpy()
        return cls.from_arrays(keys, t.column("value"), _store=store, _version=snap.version, **options)

    def _build_lancedb(self, m: np.ndarray, uri: str | None, num_partitions: int | None,
                       num_sub_vectors: int | None, lock_timeout: float) -> None:
        """Write the table and its index, then pin this index to the table version it wrote.

        A failure (or an interrupt) removes the temporary folder; in a given ``uri`` the table
        may be left without its index, and the next build of that name overwrites it.
        """
        import lancedb
        from lancedb.index import HnswSq, IvfPq

        temp = uri is None
        if uri is None:
            sweep_stale(_TEMP_PREFIX)  # the folders of builders killed before they could clean up
            uri = owned_tempdir(_TEMP_PREFIX)
        name = f"v{self.version}" if self.version is not None else "vectors"
        n, d = m.shape
        parts = num_partitions or max(1, min(4096, int(np.sqrt(n))))
        if self.kind == "hnsw":
            config: Any = HnswSq(distance_type="l2", num_partitions=max(1, parts // 16))
        else:
            sub = num_sub_vectors or next(s for s in (d // 4, d // 2, d, 1) if s and d % s == 0)
            config = IvfPq(distance_type="l2", num_partitions=parts, num_sub_vectors=sub)
        try:
            with _building(uri, name, lock_timeout):
                data = pa.table({"key": self.keys,
                                 "vector": pa.FixedSizeListArray.from_arrays(pa.array(m.ravel()), d)})
                table = lancedb.connect(uri).create_table(name, data, mode="overwrite")
                table.create_index("vector", config=config)
                # answer from this version only: a later build of the same name adds versions
                table.checkout(table.version)
        except BaseException:
            if temp:
                shutil.rmtree(uri, ignore_errors=True)
            raise
        self._table = table
        if temp:
            self._dir = uri
            # an index dropped without close() still removes its folder
            self._cleanup = weakref.finalize(self, shutil.rmtree, uri, ignore_errors=True)

    def __len__(self) -> int:
        return int(self.keys.size)

    def search(self, queries: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest keys of each query row and their squared L2 distances.

        Rows are padded with key -1 (distance inf) when fewer live keys exist. Keys no longer live
        at the index's version (erased after it was built) are never returned.
        """
        self._check_open()
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidArgumentError("k", k, "an integer >= 1")
        q = _array("queries", queries)
        if q.dtype.kind not in "biuf":
            raise InvalidArgumentError("queries", str(q.dtype), "numeric (float) query vectors")
        q = q.astype(np.float64)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise InvalidArgumentError("queries", getattr(q, "shape", None), f"[n, {self.dim}] float vectors")
        if not (np.isfinite(q).all() and (np.abs(q) <= np.finfo(np.float32).max).all()):
            raise InvalidArgumentError("queries", "non-finite values", "finite query vectors")
        k = int(k)
        n = int(self.keys.size)
        if q.shape[0] == 0:
            return np.zeros((0, k), np.int64), np.zeros((0, k))
        fetch = k if self._store is None else min(k + 8, max(n, 1))  # room for keys erased since the build
        if self.kind != "exact":  # LanceDB allocates a k-wide result: ask for no more than there are
            fetch = min(fetch, max(n, 1))
        while True:
            if self.kind == "exact":
                assert self._knn is not None
                idx, dist = self._knn.search(q, fetch)
                keys = self.keys[idx]
            else:
                keys, dist = self._search_lancedb(q, fetch)
            keys, dist = self._live(keys, dist.astype(np.float64), k)
            # every erased candidate costs a live neighbour: look further until k live keys or all keys were seen
            if self._store is None or fetch >= n or bool(np.isfinite(dist).all()):
                return keys, dist
            fetch = min(n, fetch * 4)

    def _search_lancedb(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """LanceDB's ``k`` nearest of each query row (``q`` float64); a query far enough from
        the vectors for a float32 distance to overflow is searched exactly."""
        nprobes = check_int("nprobes", self.nprobes, 1)  # public fields: may be set after the build
        refine = check_int("refine_factor", self.refine_factor, 0)
        far = (np.sqrt(np.einsum("ij,ij->i", q, q)) + self._reach) ** 2 > _F32_FAR
        if far.any():
            base = _matrix(self._table.to_lance().to_table(columns=["vector"]).column("vector"), len(self))
            at, exact = ExactKnn(base).search(q[far], k)
            keys, dist = self._search_lancedb(q[~far], k) if not far.all() else (None, None)
            out_keys = np.full((q.shape[0], k), -1, dtype=np.int64)
            out_dist = np.full((q.shape[0], k), np.inf)
            out_keys[far, :at.shape[1]], out_dist[far, :at.shape[1]] = self.keys[at], exact
            if keys is not None and dist is not None:
                out_keys[~far], out_dist[~far] = keys, dist
            return out_keys, out_dist
        query = self._table.search(q.astype(np.float32), vector_column_name="vector")
        query = query.distance_type("l2").nprobes(nprobes)
        if refine > 0:  # re-rank refine * k candidates by exact distance
            query = query.refine_factor(refine)
        res = query.limit(k).select(["key", "_distance"]).to_arrow()
        qi = res.column("query_index").to_numpy() if "query_index" in res.column_names else np.zeros(res.num_rows, int)
        rk = res.column("key").to_numpy()
        rd = res.column("_distance").to_numpy().astype(np.float64)
        keys = np.full((q.shape[0], k), -1, dtype=np.int64)
        dist = np.full((q.shape[0], k), np.inf)
        order = np.lexsort((rk, rd, qi))
        qi, rk, rd = qi[order], rk[order], rd[order]
        start = np.searchsorted(qi, np.arange(q.shape[0]))
        pos = np.arange(qi.size) - start[qi]
        ok = pos < k
        keys[qi[ok], pos[ok]] = rk[ok]
        dist[qi[ok], pos[ok]] = rd[ok]
        return keys, dist

    def _live(self, keys: np.ndarray, dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._store is not None:
            flat = keys.ravel()
            valid = np.isfinite(dist).ravel()  # padding: distance inf (its key -1 may be a real key)
            alive = np.zeros(flat.size, dtype=bool)
            if valid.any():
                alive[valid] = np.asarray(self._store.as_of(self.version).contains(flat[valid]), dtype=bool)
            dist = np.where(alive.reshape(keys.shape), dist, np.inf)
            keys = np.where(alive.reshape(keys.shape), keys, -1)
            order = np.argsort(dist, axis=1, kind="stable")
            rows = np.arange(keys.shape[0])[:, None]
            keys, dist = keys[rows, order], dist[rows, order]
        if keys.shape[1] < k:
            pad = k - keys.shape[1]
            keys = np.hstack([keys, np.full((keys.shape[0], pad), -1, np.int64)])
            dist = np.hstack([dist, np.full((dist.shape[0], pad), np.inf)])
        return keys[:, :k], dist[:, :k]

    def vectors(self, keys: Any) -> np.ndarray:
        """The indexed vectors of ``keys`` (exact kind, or read back from the LanceDB table).

        Every key must be in the index and, for an index of a store, still live at its version
        (an erased key's vector is not returned); otherwise ``InvalidArgumentError`` naming ``keys``.
        """
        self._check_open()
        raw = as_array(keys, name="keys", expected="integer keys")
        if raw.size and raw.dtype.kind not in "iu":  # 1.7 must not read key 1's vector
            raise InvalidArgumentError("keys", str(raw.dtype), "integer keys")
        k = raw.astype(np.int64).ravel()
        order = np.argsort(self.keys)
        at = np.minimum(np.searchsorted(self.keys, k, sorter=order), max(self.keys.size - 1, 0))
        pos = order[at] if self.keys.size else np.zeros(0, np.int64)
        found = self.keys[pos] == k if self.keys.size else np.zeros(k.size, dtype=bool)
        if self._store is not None and found.any():
            found[found] = np.asarray(self._store.as_of(self.version).contains(k[found]), dtype=bool)
        if not found.all():
            raise InvalidArgumentError("keys", k[~found][:5].tolist(),
                                       f"keys of this index that are live at version {self.version}")
        if self._base is not None:
            return self._base[pos]
        t = self._table.to_lance().take(pos.tolist(), columns=["vector"])
        return _matrix(t.column("vector"), k.size)

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"this vector index ({self.kind}, {len(self)} keys) was closed; build a new one")

    def close(self) -> None:
        """Drop the index's data (a temporary LanceDB folder is deleted); later ``search`` and
        ``vectors`` calls raise :class:`~modyn_store.core.errors.ClosedError`. Closing twice is fine."""
        self._closed = True
        self._table = self._knn = self._base = None
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup = None
        self._dir = None

    def __enter__(self) -> VectorIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def snapshot_table(snapshot: Any, uri: str, *, name: str | None = None, columns: list[str] | None = None,
                   batch_size: int = 65536, lock_timeout: float = 600.0) -> Any:
    """Copy a snapshot (the live rows at its version) into a LanceDB table at ``uri``.

    The table is a plain LanceDB table named ``name`` (default ``samples_v<version>``): query it
    with LanceDB's SQL filters (``table.search().where(...)``), vector search on a vector column,
    or full-text search after ``table.create_index(column, config=lancedb.index.FTS())``. It is a copy as of the version:
    later writes are not in it, and erasing a key later does not reach it (drop it and copy again).
    Copies into one ``uri`` and ``name`` are serialised like index builds (``lock_timeout``
    seconds at most, then :class:`~modyn_store.core.errors.ConflictError`), so two processes
    never interleave their batches in one table. A ``name`` LanceDB does not accept (only
    letters, digits, ``_``, ``-`` and ``.``) raises :class:`InvalidArgumentError` before
    anything is written.

    Example
    -------
    >>> import pyarrow as pa, tempfile
    >>> from modyn_store import Store
    >>> from modyn_store.core.vectors import snapshot_table
    >>> store = Store.open("memory://snapshot-table-doc", create=True)
    >>> _ = store.append(pa.table({"ts": [0, 1, 2], "label": [0, 1, 1]}))
    >>> t = snapshot_table(store.as_of(1), tempfile.mkdtemp())
    >>> t.count_rows("label = 1")
    2
    """
    import lancedb

    lock_timeout = check_float("lock_timeout", lock_timeout, 0.0)
    uri = os.fspath(uri)
    table_name = name or f"samples_v{snapshot.version}"
    batches = snapshot.to_batches(columns, batch_size=batch_size)
    with _building(uri, table_name, lock_timeout):
        db = lancedb.connect(uri)
        first = next(batches, None)
        if first is None:
            schema = snapshot.to_table(columns).schema
            return db.create_table(table_name, schema=schema, mode="overwrite")
        tbl = db.create_table(table_name, pa.Table.from_batches([first]), mode="overwrite")
        for b in batches:
            tbl.add(pa.Table.from_batches([b]))
    return tbl
