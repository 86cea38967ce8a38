"""A pipeline source as a stream of record batches, cut into chunks without holding the stream.

:func:`open_stream` turns a :class:`~modyn_store.app.pipeline.source_spec.SourceConfig` into a
:class:`SourceStream`: its schema, a small head (for checks, model parameters and the warm-up)
and a re-iterable sequence of record batches. The generated ``synthetic_clicks`` stream is
produced batch by batch (``source.params.block_rows`` rows at a time) with ``fraction``,
``limit``, ``encode`` and ``columns`` applied per batch, so memory stays bounded by one batch
whatever ``n_rows`` is; other sources are loaded as before and then streamed.

:func:`iter_chunks` cuts a time-ordered batch stream into chunks under a chunking rule and
yields each chunk as a :class:`pyarrow.RecordBatchReader` that pulls its batches lazily, so a
chunk (one store version) is appended as it is produced, never materialised whole.

Example
-------
>>> from modyn_store.app.pipeline.source_spec import SourceConfig
>>> from modyn_store.app.pipeline.stream import iter_chunks, open_stream
>>> s = open_stream(SourceConfig(dataset="synthetic_clicks", params={"n_rows": 5000, "n_days": 5,
...                                                                   "block_rows": 512}, encode="clicks"))
>>> s.head.num_rows, s.schema.names[:4]
(4096, ['key', 'ts', 'label', 'dense'])
>>> [(i, reader.read_all().num_rows) for i, reader in iter_chunks(s.schema, s.batches(), "ts:1")]
[(0, 1000), (1, 1000), (2, 1000), (3, 1000), (4, 1000)]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.source import _subset, _with_labels, chunk_rule, load_source
from modyn_store.app.pipeline.source_spec import SYNTHETIC, SourceConfig
from modyn_store.core.errors import ModynStoreError

__all__ = ["HEAD_ROWS", "SourceStream", "chunk_count", "iter_chunks", "open_stream"]

HEAD_ROWS = 4096


@dataclass(frozen=True)
class SourceStream:
    """A source as a stream: ``schema`` (with the label map in its metadata), the first rows
    (``head``), ``batches()`` (a fresh iterator over every row, in time order, each call),
    ``rows`` when known up front (``None`` otherwise) and ``table`` where the source was loaded
    whole anyway (``None`` for a generated stream)."""

    schema: pa.Schema
    head: pa.Table
    batches: Callable[[], Iterator[pa.RecordBatch]]
    rows: int | None = None
    table: pa.Table | None = None

    @classmethod
    def of_table(cls, table: pa.Table) -> SourceStream:
        """A loaded table as a stream (``table`` kept: checks may read all of it)."""
        return cls(table.schema, table.slice(0, HEAD_ROWS), lambda: iter(table.to_batches()), table.num_rows, table)


def open_stream(source: SourceConfig, data_dir: str | Path | None = None) -> SourceStream:
    """The stream of ``source`` (see the module docstring); validates like ``load_source``."""
    if source.kind == "dataset" and source.dataset == SYNTHETIC:
        return _synthetic(source)
    return SourceStream.of_table(load_source(source, data_dir))


def chunk_count(source: SourceConfig, stream: SourceStream | None, *, table: pa.Table | None = None) -> int:
    """Chunks of ``source``'s rows under its chunk rule (``0`` when unknown before they are read: a
    streamed source).

    The rows are ``table`` where given, else ``stream.table`` (the source loaded whole). A rule
    that does not fit the event times (``7d`` on an integer column of milliseconds) is refused
    naming ``source.chunk``: on the whole rows where they are loaded, else on the stream's head.

    Example
    -------
    >>> t = pa.table({"ts": [0, 1, 5, 6, 12], "label": [0, 1, 0, 1, 0]})
    >>> chunk_count(SourceConfig(chunk="ts:5"), SourceStream.of_table(t))
    3
    """
    from modyn_store.app.datasets import chunk_index
    from modyn_store.core.errors import InvalidArgumentError

    whole = table if table is not None else (stream.table if stream is not None else None)
    rows = whole if whole is not None else (stream.head if stream is not None else None)
    if rows is None or "ts" not in rows.column_names:
        return 0
    try:
        chunks = chunk_index(rows.column("ts"), chunk_rule(source))
    except InvalidArgumentError as exc:
        raise PipelineConfigError("source.chunk", str(exc)) from exc
    return int(np.unique(chunks).size) if whole is not None else 0


def _synthetic(source: SourceConfig) -> SourceStream:
    from modyn_store.app.datasets import synthetic_clicks
    from modyn_store.app.datasets.labels import LabelMap

    params = dict(source.params)
    try:
        synthetic_clicks(**params)  # validates the parameters now, before any work
    except (ModynStoreError, TypeError) as exc:
        raise PipelineConfigError("source.params", str(exc)) from exc
    per_batch = replace(source, fraction=None, limit=None)
    labels = LabelMap("int", (0, 1))  # clicks: 0 or 1 by construction

    def batches() -> Iterator[pa.RecordBatch]:
        rng = np.random.default_rng(source.seed)  # one generator over the stream: same draws as one table
        left = source.limit
        for raw in synthetic_clicks(**params):
            t = pa.Table.from_batches([raw])
            if source.fraction is not None and source.fraction < 1:
                t = t.filter(pa.array(rng.random(t.num_rows) < source.fraction))
            if left is not None:
                t = t.slice(0, left)
                left -= t.num_rows
            if t.num_rows:
                out = _with_labels(_subset(per_batch, t), labels)
                yield from out.to_batches()
            if left == 0:
                return

    head_batches: list[pa.RecordBatch] = []
    n = 0
    for b in batches():
        head_batches.append(b)
        n += b.num_rows
        if n >= HEAD_ROWS:
            break
    if not head_batches:
        raise PipelineConfigError("source.params", "the generated stream is empty")
    head = pa.Table.from_batches(head_batches).slice(0, HEAD_ROWS)
    rows = None if source.fraction is not None and source.fraction < 1 else \
        min(int(params.get("n_rows", 100_000)), source.limit or 1 << 62)
    return SourceStream(head.schema, head, batches, rows)


def _bucket_fn(rule: str) -> Callable[[pa.Array, int, object], np.ndarray]:
    """``f(ts, row offset, first ts) -> absolute chunk numbers`` of a batch (``chunking`` rules)."""
    from modyn_store.app.datasets import chunk_index

    m = re.fullmatch(r"n:(\d+)", rule)
    if m and int(m.group(1)) > 0:
        k = int(m.group(1))
        return lambda ts, offset, first: (offset + np.arange(len(ts), dtype=np.int64)) // k

    def by_time(ts: pa.Array, offset: int, first: object) -> np.ndarray:
        # chunk numbers count from the first row's bucket: compute them with that row in front
        both = pa.concat_arrays([pa.array([first], type=ts.type), ts])
        return chunk_index(both, rule)[1:]

    return by_time


def iter_chunks(schema: pa.Schema, batches: Iterator[pa.RecordBatch], rule: str,
                ts: str = "ts") -> Iterator[tuple[int, pa.RecordBatchReader]]:
    """``(chunk number, reader of its rows)`` for a time-ordered batch stream (empty chunks skipped).

    Each reader must be read to its end (``Store.append`` does) before the next chunk is asked for.

    Raises
    ------
    InvalidArgumentError
        The stream is not in time order (chunk numbers decrease).
    """
    from modyn_store.core.errors import InvalidArgumentError

    bucket = _bucket_fn(rule)
    src = iter(batches)
    offset, last = 0, -1
    first: object = None
    pending: list[tuple[int, pa.RecordBatch]] = []  # (chunk, rows) cut but not yet handed out

    def fill() -> bool:
        nonlocal offset, last, first
        for b in src:
            if b.num_rows == 0:
                continue
            col = b.column(b.schema.get_field_index(ts))
            if first is None:
                first = col[0].as_py()
            idx = bucket(col, offset, first)
            offset += b.num_rows
            if idx[0] < last or np.any(np.diff(idx) < 0):
                raise InvalidArgumentError("table", "<stream>", f"rows sorted by {ts!r}")
            last = int(idx[-1])
            cuts = np.flatnonzero(np.diff(idx)) + 1
            for lo, hi in zip(np.r_[0, cuts].tolist(), np.r_[cuts, idx.size].tolist()):
                pending.append((int(idx[lo]), b.slice(lo, hi - lo)))
            return True
        return False

    while pending or fill():
        current = pending[0][0]

        def rows(current: int = current) -> Iterator[pa.RecordBatch]:
            while True:
                while pending and pending[0][0] == current:
                    yield pending.pop(0)[1]
                if pending or not fill():
                    return

        yield current, pa.RecordBatchReader.from_batches(schema, rows())
