"""Per-sample scores (loss, uncertainty, embeddings ...), appended as store versions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine._search import first_unsorted
from modyn_store.core._score_stream import live_mask, score_runs, stream_latest
from modyn_store.core._validate import as_array, as_keys, check_batch_size, check_name
from modyn_store.core.errors import InvalidArgumentError, SchemaMismatchError, UnknownKeyError
from modyn_store.core.records import VersionRecord
from modyn_store.core.snapshot import OnUnavailable

if TYPE_CHECKING:
    from modyn_store.core.store import Store, VersionRef

__all__ = ["Scores"]

#: the forms of score values :meth:`Scores.write` takes (named when others are refused)
_NUMERIC = ("numbers: a NumPy array, list or Arrow array of shape (n,), or vectors of shape (n, d) as a 2-D "
            "NumPy array, equal-length lists or an Arrow FixedSizeListArray (or ChunkedArray of one) of numbers")


def _vectors(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow fixed-size list column of numbers as an ``(n, d)`` array: its flat values
    reshaped (no copy per row; a ChunkedArray's chunks are joined first). Null vectors are
    refused by the caller; a null component is refused here (NumPy would read it as NaN)."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    flat = arr.flatten()  # the rows' components, the array's slice offset applied
    if flat.null_count:
        raise InvalidArgumentError("values", f"{flat.null_count} null vector components", "non-null, finite scores")
    if not (pa.types.is_integer(flat.type) or pa.types.is_floating(flat.type)):
        raise InvalidArgumentError("values", f"vectors of {flat.type}", _NUMERIC)
    return flat.to_numpy(zero_copy_only=False).reshape(len(arr), arr.type.list_size)


class Scores:
    """The store's score tables, one per score name (``scores/<name>.lance``).

    Scores are appended, never updated: reading "as of" a version returns, per live key, the
    value of the latest write at or before that version.

    Example
    -------
    >>> import numpy as np, pyarrow as pa
    >>> from modyn_store import Store
    >>> store = Store.open("memory://scores-doc", create=True)
    >>> _ = store.append(pa.table({"ts": [1, 2, 3]}))
    >>> _ = store.scores.write("loss", [0, 1, 2], np.array([0.5, 0.1, 0.9]))
    >>> _ = store.scores.write("loss", [1], np.array([0.7]))
    >>> store.scores.as_of(None, "loss").column("value").to_pylist()
    [0.5, 0.7, 0.9]
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def names(self) -> list[str]:
        """The score names that have been written: by a committed version (the table a write
        still in progress, or one killed before its commit, created is none)."""
        written = self._store._written.all()
        return [n[len("scores/") :] for n in self._store._tables.names() if n.startswith("scores/") and n in written]

    def write(
        self,
        name: str,
        keys: Any,
        values: Any,
        *,
        training_id: str | None = None,
        message: str = "",
    ) -> VersionRecord:
        """Write one score per key as a new version.

        ``values`` is a float array of shape ``(n,)`` (stored as float64) or ``(n, d)`` (vectors
        such as embeddings, stored as float32). Keys must be live; values must be finite;
        integer scores must lie within ``+-2**53`` (larger ones would be rounded as float64), integer
        vector components within ``+-2**24`` (float32). ``values`` may be a NumPy array, a list or
        an Arrow array; vectors also an Arrow ``FixedSizeListArray`` (or a ChunkedArray of one) of
        numbers, as :meth:`as_of` returns them (its flat values reshaped, not converted row by
        row). Vectors of unequal lengths (ragged lists, variable-size Arrow lists), nulls (Arrow
        scores or vector components) and masked arrays with masked entries (keys or values) are
        refused.
        """
        return self.write_many(keys, {name: values}, training_id=training_id, message=message)

    def write_many(
        self,
        keys: Any,
        values: Mapping[str, Any],
        *,
        training_id: str | None = None,
        message: str = "",
    ) -> VersionRecord:
        """Write several scores of the same keys (e.g. loss and entropy) as one version.

        Every score is checked before anything is written; a bad one leaves the store as it was.
        Rows are stored sorted by key, so reads of many versions merge them in bounded memory
        (:meth:`batches`); the liveness check of a large store streams the keys in the written
        key range instead of loading the whole key set.
        """
        if training_id is not None:
            check_name("training_id", training_id)
        if not isinstance(values, Mapping) or not values:
            raise InvalidArgumentError("values", values, "a non-empty mapping of score name -> values")
        k = as_keys(keys)
        if k.size == 0:
            raise InvalidArgumentError("keys", [], "at least one key")
        columns = {name: self._column(name, k.size, v) for name, v in values.items()}
        if first_unsorted(k) >= 0:  # stored sorted by key; one O(n) pass when already sorted
            order = np.argsort(k, kind="stable")
            k = k[order]
            columns = {name: col.take(pa.array(order)) for name, col in columns.items()}
        if (k[1:] == k[:-1]).any():
            raise InvalidArgumentError("keys", "duplicates", "one score per key per write")
        with self._store.transaction("scores", message) as txn:
            live = live_mask(self._store.as_of(txn.version - 1), k)
            if not live.all():
                bad = k[~live]
                raise UnknownKeyError(f"{bad.size} keys are not live, e.g. {bad[:5].tolist()}")
            for name, col in columns.items():  # again under the lock: another writer may have created it
                self._check_type(name, col)
            ids = pa.array([training_id] * k.size, pa.string())
            for name, col in columns.items():
                txn._write(f"scores/{name}", pa.table({"key": pa.array(k), "value": col, "training_id": ids}))
            txn.details = {
                "scores": sorted(columns),
                "rows": int(k.size),
                "training_id": training_id,
                "sorted": True,
            }
        assert txn.record is not None
        return txn.record

    def _column(self, name: str, n: int, values: Any) -> pa.Array:
        """Validate one score's values and return them as an Arrow column."""
        check_name("score", name)
        if isinstance(values, (pa.Array, pa.ChunkedArray)) and values.null_count:
            # (NumPy would read them as NaN, and the error would name NaN the caller never gave)
            raise InvalidArgumentError("values", f"{values.null_count} null scores", "non-null, finite scores")
        if isinstance(values, (pa.Array, pa.ChunkedArray)) and pa.types.is_fixed_size_list(values.type):
            values = _vectors(values)
        v = as_array(values, name="values", expected=f"a numeric array of shape ({n},) or ({n}, d)")
        if v.dtype.kind not in "fiu":  # (a timedelta64 is an integer type to NumPy: its unit would set the score)
            raise InvalidArgumentError("values", f"dtype {v.dtype}", _NUMERIC)
        if v.ndim not in (1, 2) or v.shape[0] != n or (v.ndim == 2 and v.shape[1] == 0):
            raise InvalidArgumentError("values", f"shape {v.shape}", f"shape ({n},) or ({n}, d) with d >= 1")
        exact = 2**53 if v.ndim == 1 else 2**24  # the integers float64 / float32 hold exactly
        if v.dtype.kind in "iu" and v.size and max(-int(v.min()), int(v.max())) > exact:
            # stored as float64 (vectors: float32): 2**53 + 1 would be read back as 2**53
            bad = int(np.count_nonzero((v > exact) | (v < -exact))) if v.dtype.kind == "i" else int(
                np.count_nonzero(v > exact))
            kind = "scores" if v.ndim == 1 else "vector components"
            as_type = "float64" if v.ndim == 1 else "float32"
            raise InvalidArgumentError("values", f"{bad} integer {kind} beyond 2**{exact.bit_length() - 1}",
                                       f"integers within +-2**{exact.bit_length() - 1} ({kind} are stored as "
                                       f"{as_type}, which rounds larger ones), or floats")
        # checked as stored: a vector's float32 cast turns values beyond +-3.4e38 into inf
        with np.errstate(over="ignore", invalid="ignore"):  # judged below, not warned about
            stored = v.astype(np.float64) if v.ndim == 1 else np.ascontiguousarray(v, dtype=np.float32)
        if not np.all(np.isfinite(stored)):
            bad = int((~np.isfinite(stored)).reshape(n, -1).any(axis=1).sum())
            expected = "finite scores" if v.ndim == 1 else "finite scores within float32's range (|x| <= 3.4e38)"
            raise InvalidArgumentError("values", f"{bad} rows with NaN or inf", expected)
        if v.ndim == 1:
            col: pa.Array = pa.array(stored)
        else:
            col = pa.FixedSizeListArray.from_arrays(pa.array(stored.ravel()), v.shape[1])
        self._check_type(name, col)
        return col

    def _check_type(self, name: str, col: pa.Array) -> None:
        """Refuse values of another type than the score table holds (if a committed version
        wrote it: a table only an uncommitted write created is dropped by the writer's recovery)."""
        existing = self._store._tables.open(f"scores/{name}")
        if existing is not None:
            have = existing.schema.field("value").type
            # (the log read only where the types differ: the rare case, and a request on S3)
            if not have.equals(col.type) and f"scores/{name}" in self._store._written.all():
                raise SchemaMismatchError(f"score {name!r} holds values of type {have}, got {col.type}")

    def batches(
        self,
        version: VersionRef,
        name: str,
        *,
        batch_size: int = 65536,
        on_unavailable: OnUnavailable = "error",
    ) -> Iterator[pa.RecordBatch]:
        """Stream the latest score per live key at ``version`` in bounded memory, ascending by
        key: batches of ``key``, ``value``, ``training_id``, ``version`` (see :meth:`as_of`) of
        ``batch_size`` rows each, the last one of at most ``batch_size``.

        Memory is one batch per score write at or before ``version`` (each write's rows are
        stored sorted by key and merged), never the whole table. Checks run before this returns.

        Example
        -------
        >>> import numpy as np, pyarrow as pa
        >>> from modyn_store import Store
        >>> store = Store.open("memory://scores-batches-doc", create=True)
        >>> _ = store.append(pa.table({"ts": [1, 2, 3]}))
        >>> _ = store.scores.write("loss", [2, 0], np.array([0.9, 0.5]))
        >>> _ = store.scores.write("loss", [1, 2], np.array([0.7, 0.2]))
        >>> [b.column("value").to_pylist() for b in store.scores.batches(None, "loss")]
        [[0.5, 0.7, 0.2]]
        """
        batch_size = check_batch_size(batch_size)
        snap, runs = self._checked(version, name, on_unavailable)
        if runs is None:  # written before rows were sorted: merged in memory
            return iter(self._in_memory(snap, name).to_batches(max_chunksize=batch_size))
        return stream_latest(self._store, snap, name, runs, batch_size, on_unavailable=on_unavailable)

    def as_of(self, version: VersionRef, name: str, *, on_unavailable: OnUnavailable = "error") -> pa.Table:
        """The latest score per live key at ``version``: columns key, value, training_id, version,
        ascending by key (one table; :meth:`batches` streams the same rows).

        If ``vacuum`` purged rows live at ``version``, their scores are gone too: this raises
        :class:`~modyn_store.core.errors.DataUnavailableError` (``keys`` names them) unless
        ``on_unavailable="skip"``, which returns the scores of the other keys.
        """
        snap, runs = self._checked(version, name, on_unavailable)
        if runs is None:
            return self._in_memory(snap, name)
        schema = self._out_schema(name)
        batches = stream_latest(self._store, snap, name, runs, 1 << 20, on_unavailable=on_unavailable)
        return pa.Table.from_batches(list(batches), schema=schema)

    def _checked(self, version: VersionRef, name: str, on_unavailable: OnUnavailable) -> tuple[Any, list[int] | None]:
        check_name("score", name)
        snap = self._store.as_of(version)
        if name not in self.names():
            self._store._tables.open(f"scores/{name}")  # raises if the log wrote it: a lost table
            raise InvalidArgumentError("name", name, f"a written score name: {self.names()}")
        snap._check_unavailable(on_unavailable)
        return snap, score_runs(self._store, name, snap.version)

    def _out_schema(self, name: str) -> pa.Schema:
        ds = self._store._tables.open(f"scores/{name}")
        assert ds is not None
        s = ds.schema
        return pa.schema([s.field("key"), s.field("value"), s.field("training_id"), pa.field("version", pa.int64())])

    def _in_memory(self, snap: Any, name: str) -> pa.Table:
        """The latest score per live key from all score rows at once (stores whose score
        writes predate sorted runs)."""
        t = self._store._tables.scan(f"scores/{name}", None, f"_version <= {snap.version}")
        assert t is not None
        keys = t.column("key").to_numpy()
        vers = t.column("_version").to_numpy()
        order = np.lexsort((vers, keys))
        sk = keys[order]
        last = np.ones(sk.size, dtype=bool)
        last[:-1] = sk[1:] != sk[:-1]
        idx = order[last]
        idx = idx[snap.contains(keys[idx])]
        out = t.take(pa.array(idx))
        return pa.table(
            {
                "key": out.column("key"),
                "value": out.column("value"),
                "training_id": out.column("training_id"),
                "version": out.column("_version"),
            }
        )
