"""In-memory stand-ins for a store snapshot and its scores, for the policy tests.

They implement :class:`~policies.base.SnapshotLike` and :class:`~policies.base.ScoresLike` over
an Arrow table; ``filter`` accepts only the version ranges policies themselves ask for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store.core.errors import InvalidArgumentError, InvalidFilterError, UnknownKeyError

__all__ = ["MemoryScores", "MemorySnapshot"]

_CLAUSE = re.compile(r"^_version (>|<=|=) (-?\d+)$")


class MemorySnapshot:
    """A snapshot over an Arrow table with ``key`` (int64), ``ts`` and optional ``label``,
    payload and ``_version`` (the inserting version; default ``version``) columns.

    Example
    -------
    >>> import pyarrow as pa
    >>> s = MemorySnapshot(pa.table({"key": [3, 1], "ts": [0, 1]}), version=4)
    >>> s.keys().tolist(), s.count()
    ([1, 3], 2)
    """

    def __init__(self, table: pa.Table, version: int) -> None:
        if "_version" not in table.column_names:
            table = table.append_column("_version", pa.array(np.full(table.num_rows, version)))
        self._table = table
        self._version = int(version)

    @property
    def version(self) -> int:
        return self._version

    def keys(self) -> np.ndarray:
        return np.sort(self._table.column("key").to_numpy())

    def count(self) -> int:
        return int(self._table.num_rows)

    def _mask(self, filter: str | None) -> np.ndarray | None:
        if filter is None:
            return None
        vers = self._table.column("_version").to_numpy()
        mask = np.ones(vers.size, dtype=bool)
        for clause in filter.split(" AND "):
            m = _CLAUSE.match(clause.strip())
            if not m:
                raise InvalidFilterError(f"unsupported filter {filter!r}")
            bound = int(m.group(2))
            op = m.group(1)
            mask &= vers > bound if op == ">" else (vers <= bound if op == "<=" else vers == bound)
        return mask

    def to_batches(self, columns: list[str] | None = None, filter: str | None = None, *,
                   batch_size: int = 65536) -> Iterator[pa.RecordBatch]:
        names = [c for c in self._table.column_names if c != "_version"]
        cols = names if columns is None else list(columns)
        for c in cols:
            if c not in names:
                raise InvalidArgumentError("columns", c, f"columns of the store: {names}")
        t = self._table.select(cols)
        mask = self._mask(filter)
        if mask is not None:
            t = t.filter(pa.array(mask))
        yield from (b for b in t.to_batches(max_chunksize=batch_size) if b.num_rows)

    def take(self, keys: Any, columns: list[str] | None = None) -> pa.Table:
        keys = np.asarray(keys, dtype=np.int64)
        all_keys = self._table.column("key").to_numpy()
        order = np.argsort(all_keys, kind="stable")
        pos = np.searchsorted(all_keys[order], keys)
        pos[pos == all_keys.size] = 0
        if keys.size and not np.all(all_keys[order][pos] == keys):
            raise UnknownKeyError("some keys are not live in this snapshot")
        names = [c for c in self._table.column_names if c != "_version"]
        return self._table.select(columns or names).take(pa.array(order[pos]))


class MemoryScores:
    """Scores by name: ``{name: (keys, values)}``; ``as_of`` returns the store's table shape."""

    def __init__(self, scores: Mapping[str, tuple[Any, Any]]) -> None:
        self._scores = {k: (np.asarray(a, dtype=np.int64), np.asarray(b)) for k, (a, b) in
                        scores.items()}

    def as_of(self, version: int, name: str) -> pa.Table:
        if name not in self._scores:
            raise InvalidArgumentError("name", name, f"a written score name: {sorted(self._scores)}")
        keys, values = self._scores[name]
        value = (pa.array(values) if values.ndim == 1 else pa.FixedSizeListArray.from_arrays(
            pa.array(values.astype(np.float32).ravel()), values.shape[1]))
        n = keys.size
        return pa.table({"key": pa.array(keys), "value": value,
                         "training_id": pa.array([None] * n, pa.string()),
                         "version": pa.array(np.full(n, version, dtype=np.int64))})
