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
not from such a cache: close the index (or rebuild it) after an erasure.

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

import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from modyn_store.core._knn import ExactKnn
from modyn_store.core._validate import check_int, check_int_or_none
from modyn_store.core.errors import InvalidArgumentError

__all__ = ["VectorIndex", "snapshot_table"]

Kind = Literal["auto", "exact", "ivf_pq", "hnsw"]
KINDS = ("auto", "exact", "ivf_pq", "hnsw")


def _array(name: str, values: Any) -> np.ndarray:
    """``np.asarray(values)``; ragged rows raise ``InvalidArgumentError`` naming ``name``."""
    try:
        return np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise InvalidArgumentError(name, "ragged or not an array", "a [n, d] matrix of numbers") from exc


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
    train partitions; ``kind`` then reads ``"exact"``). ``nprobes`` (partitions searched,
    >= 1) and ``refine_factor`` (>= 0; ``refine_factor * k`` candidates re-ranked by exact
    distance, 0: none, the distances are then the index's approximations) trade recall for
    speed on the approximate kinds; ``num_partitions`` (>= 1) and ``num_sub_vectors`` (>= 1,
    a divisor of the dimension; IVF-PQ only) shape the index. Other values are refused with
    ``InvalidArgumentError`` naming the option, before anything is written to ``uri``.
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
    build_seconds: float = 0.0

    @classmethod
    def from_arrays(cls, keys: Any, vectors: Any, *, kind: Kind = "auto", exact_below: int = 50_000,
                    uri: str | None = None, num_partitions: int | None = None,
                    num_sub_vectors: int | None = None, nprobes: int = 32, refine_factor: int = 10,
                    _store: Any = None, _version: int | None = None) -> VectorIndex:
        """Index ``vectors[i]`` under ``keys[i]`` (keys unique)."""
        import time

        if kind not in KINDS:
            raise InvalidArgumentError("kind", kind, f"one of {list(KINDS)}")
        exact_below = check_int("exact_below", exact_below, 0)
        nprobes, refine_factor = check_int("nprobes", nprobes, 1), check_int("refine_factor", refine_factor, 0)
        num_partitions = check_int_or_none("num_partitions", num_partitions, 1)
        num_sub_vectors = check_int_or_none("num_sub_vectors", num_sub_vectors, 1)
        raw_keys = np.asarray(keys)
        if raw_keys.size and raw_keys.dtype.kind not in "iu":
            raise InvalidArgumentError("keys", str(raw_keys.dtype), "integer keys")
        k = raw_keys.astype(np.int64)
        if k.ndim != 1 or np.unique(k).size != k.size:
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
        if chosen == "exact" or k.size < 256:  # too few rows to train partitions: exact is exact
            idx.kind = "exact"
            idx._base = m
            idx._knn = ExactKnn(m)
        else:
            idx._build_lancedb(m, uri, num_partitions, num_sub_vectors)
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
                       num_sub_vectors: int | None) -> None:
        import lancedb
        from lancedb.index import HnswSq, IvfPq

        if uri is None:
            self._dir = tempfile.mkdtemp(prefix="modyn-vectors-")
            uri = self._dir
        db = lancedb.connect(uri)
        n, d = m.shape
        data = pa.table({"key": self.keys,
                         "vector": pa.FixedSizeListArray.from_arrays(pa.array(m.ravel()), d)})
        name = f"v{self.version}" if self.version is not None else "vectors"
        self._table = db.create_table(name, data, mode="overwrite")
        parts = num_partitions or max(1, min(4096, int(np.sqrt(n))))
        if self.kind == "hnsw":
            config: Any = HnswSq(distance_type="l2", num_partitions=max(1, parts // 16))
        else:
            sub = num_sub_vectors or next(s for s in (d // 4, d // 2, d, 1) if s and d % s == 0)
            config = IvfPq(distance_type="l2", num_partitions=parts, num_sub_vectors=sub)
        self._table.create_index("vector", config=config)

    def __len__(self) -> int:
        return int(self.keys.size)

    def search(self, queries: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest keys of each query row and their squared L2 distances.

        Rows are padded with key -1 (distance inf) when fewer live keys exist. Keys no longer live
        at the index's version (erased after it was built) are never returned.
        """
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
        fetch = k if self._store is None else min(k + 8, max(n, 1))  # room for keys erased since the build
        while True:
            if self.kind == "exact":
                assert self._knn is not None
                idx, dist = self._knn.search(q, fetch)
                keys = self.keys[idx]
            else:
                keys, dist = self._search_lancedb(q.astype(np.float32), fetch)
            keys, dist = self._live(keys, dist.astype(np.float64), k)
            # every erased candidate costs a live neighbour: look further until k live keys or all keys were seen
            if self._store is None or fetch >= n or bool(np.isfinite(dist).all()):
                return keys, dist
            fetch = min(n, fetch * 4)

    def _search_lancedb(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        nprobes = check_int("nprobes", self.nprobes, 1)  # public fields: may be set after the build
        refine = check_int("refine_factor", self.refine_factor, 0)
        query = self._table.search(q, vector_column_name="vector").distance_type("l2").nprobes(nprobes)
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
        raw = np.asarray(keys)
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

    def close(self) -> None:
        """Drop the LanceDB copy (a temporary folder is deleted)."""
        self._table = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def snapshot_table(snapshot: Any, uri: str, *, name: str | None = None, columns: list[str] | None = None,
                   batch_size: int = 65536) -> Any:
    """Copy a snapshot (the live rows at its version) into a LanceDB table at ``uri``.

    The table is a plain LanceDB table named ``name`` (default ``samples_v<version>``): query it
    with LanceDB's SQL filters (``table.search().where(...)``), vector search on a vector column,
    or full-text search after ``table.create_index(column, config=lancedb.index.FTS())``. It is a copy as of the version:
    later writes are not in it, and erasing a key later does not reach it (drop it and copy again).

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

    db = lancedb.connect(uri)
    table_name = name or f"samples_v{snapshot.version}"
    batches = snapshot.to_batches(columns, batch_size=batch_size)
    first = next(batches, None)
    if first is None:
        schema = snapshot.to_table(columns).schema
        return db.create_table(table_name, schema=schema, mode="overwrite")
    tbl = db.create_table(table_name, pa.Table.from_batches([first]), mode="overwrite")
    for b in batches:
        tbl.add(pa.Table.from_batches([b]))
    return tbl
