"""Replay mode: stream a time-ordered data set into a store, one version per chunk, and run a pipeline.

:class:`Runner` validates everything first (data path, columns, policies), then appends the
stream chunk by chunk in event-time order (plus the configured deletion events), feeds every new
version to the :class:`~modyn_store.app.pipeline.loop.PipelineLoop`, and finally evaluates every
model on every time slice (``training.evaluate``, recorded in the catalog). ``run()`` yields
:class:`RunEvent` s for progress; :attr:`Runner.result` holds the :class:`RunResult`.

Example
-------
>>> from modyn_store.app.pipeline.config import parse_pipeline
>>> from modyn_store.app.pipeline.runner import run_pipeline
>>> cfg = parse_pipeline({"name": "doc", "source": {"dataset": "elec2", "limit": 3000, "chunk": "14d"},
...     "model": {"name": "logreg"}, "trigger": {"name": "time", "every": "14d"},
...     "evaluation": {"slices": 4}})
>>> res = run_pipeline(cfg, "memory://runner-doc")
>>> len(res.trainings) > 1, len(res.result.matrix[0])
(True, 4)
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store.app.pipeline.config import PipelineConfig
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.evaluate import evaluate_pipeline, threads  # noqa: F401 (re-exported)
from modyn_store.app.pipeline.loop import PipelineLoop, TrainingInfo
from modyn_store.app.pipeline.source import (
    check_columns,
    chunk_rule,
    model_params,
    prepare_store,
    replay_store,
)
from modyn_store.app.pipeline.stream import SourceStream, chunk_count, open_stream
from modyn_store.app.pipeline.stream import iter_chunks as stream_chunks
from modyn_store.app.report.records import PipelineResult

__all__ = ["ChunkVersion", "DeletionEvent", "RunEvent", "RunResult", "Runner", "evaluate_pipeline", "ingest", "run_pipeline", "threads"]


@dataclass(frozen=True)
class ChunkVersion:
    """One ingested chunk: its slice number, rows, and the store versions it spans ``(start, end]``."""

    index: int
    rows: int
    start: int
    end: int


@dataclass(frozen=True)
class DeletionEvent:
    """Keys erased (or soft-deleted) by a replay deletion event, at ``version``, and the trainings
    that had used them (from the store's erasure report; empty for soft deletes)."""

    version: int
    mode: str
    keys: np.ndarray
    trainings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunEvent:
    """A progress event of :meth:`Runner.run`: ``kind`` is ``ingest``, ``delete``, ``train``,
    ``evaluate`` or ``done``; ``step`` of ``total`` chunks."""

    kind: str
    step: int
    total: int
    message: str = ""
    training: TrainingInfo | None = None
    deletion: DeletionEvent | None = None


@dataclass(frozen=True)
class RunResult:
    """A finished pipeline: its trainings, the report row data and the stored evaluation's id."""

    config: PipelineConfig
    store_uri: str
    trainings: tuple[TrainingInfo, ...]
    result: PipelineResult
    evaluation_id: str | None
    seconds: float
    rows: int
    #: Seconds of :attr:`seconds` spent evaluating the pipeline's models on the slices.
    evaluation_seconds: float = 0.0


def _deletion_keys(store: Any, recent: Sequence[np.ndarray], fraction: float, rng: np.random.Generator) -> np.ndarray:
    live = store.as_of().keys()
    if recent:
        live = np.setdiff1d(live, np.concatenate(list(recent)), assume_unique=True)
    n = int(round(live.size * fraction))
    if n == 0:
        return np.empty(0, np.int64)
    return np.sort(rng.choice(live, size=n, replace=False))


def ingest(store: Any, config: PipelineConfig,
           table: pa.Table | SourceStream) -> Iterator[tuple[ChunkVersion, DeletionEvent | None]]:
    """Append ``table`` chunk by chunk (one version each) with the configured deletion events.

    A :class:`~modyn_store.app.pipeline.stream.SourceStream` is appended as it is produced: each
    chunk streams into its version, so memory does not grow with the chunk or the stream.
    Yields ``(chunk, deletion)`` after each chunk; ``deletion`` is the event that followed it
    (``None`` without one).
    """
    rule = chunk_rule(config.source)
    dels = config.deletions
    recent: list[np.ndarray] = []
    if isinstance(table, pa.Table):
        table = SourceStream.of_table(table)
    for n, (index, reader) in enumerate(stream_chunks(table.schema, table.batches(), rule), start=1):
        start = store.version
        counted = _Counted(reader, keep_keys=dels is not None)
        store.append(counted.reader(), message=f"{config.source.label_text} chunk {index}")
        recent.append(counted.keys())
        deleted = None
        if dels is not None and n % dels.every == 0 and dels.fraction > 0:
            keep = recent[-dels.older_than:] if dels.older_than else []
            keys = _deletion_keys(store, keep, dels.fraction, np.random.default_rng([dels.seed, n]))
            if keys.size:
                if dels.mode == "erase":
                    rep = store.erase(keys, reason=f"replay deletion event after chunk {index}")
                    deleted = DeletionEvent(rep.version, "erase", keys, tuple(rep.trainings))
                else:
                    rec = store.delete(keys=keys, message=f"replay deletion event after chunk {index}")
                    deleted = DeletionEvent(rec.version, "delete", keys)
        recent = recent[-max(dels.older_than if dels else 0, 1):]
        yield ChunkVersion(index, counted.rows, start, store.version), deleted


class _Counted:
    """Pass a chunk's batches through, counting rows (and keeping keys only when asked)."""

    def __init__(self, reader: pa.RecordBatchReader, *, keep_keys: bool) -> None:
        self._reader = reader
        self._keep = keep_keys
        self._keys: list[np.ndarray] = []
        self.rows = 0

    def reader(self) -> pa.RecordBatchReader:
        def gen() -> Iterator[pa.RecordBatch]:
            for b in self._reader:
                self.rows += b.num_rows
                if self._keep:
                    self._keys.append(b.column(b.schema.get_field_index("key")).to_numpy())
                yield b

        return pa.RecordBatchReader.from_batches(self._reader.schema, gen())

    def keys(self) -> np.ndarray:
        return np.concatenate(self._keys) if self._keys else np.empty(0, np.int64)


def _refuse_used(store: Any) -> None:
    """A replay ingests its whole source: into a store holding rows (an earlier, interrupted or
    concurrent replay) its keys collide, or its versions mix with other data."""
    if any(r.inserted for r in store.log()):
        raise PipelineConfigError("--store", f"{store.uri} already holds data (version {store.version}); a replay "
                                             "ingests its source into a new store: choose an empty store, or "
                                             "replay this store's own versions with source: {store: PATH}")


class Runner:
    """Run one pipeline in replay mode (see the module docstring).

    Parameters
    ----------
    config:
        The validated pipeline.
    store:
        A :class:`modyn_store.Store` or a location (created when missing).
    data_dir:
        The data folder used when the source gives no path (else ``$MODYN_STORE_DATA``).
    table:
        The loaded source stream, when the caller already has it.
    stream:
        The source as a :class:`~modyn_store.app.pipeline.stream.SourceStream` (default: opened
        from ``config.source``; a generated stream is never held in memory).
    chunks:
        The stream is already in ``store`` as these chunk versions (several pipelines of a grid
        replay one ingested store); nothing is appended.
    """

    def __init__(self, config: PipelineConfig, store: Any, *, data_dir: str | Path | None = None,
                 table: pa.Table | None = None, stream: SourceStream | None = None,
                 chunks: Sequence[ChunkVersion] | None = None) -> None:
        self.config = config
        self._store_arg = store
        self.data_dir = data_dir
        self.table = table
        self.stream = stream
        self.chunks = list(chunks) if chunks is not None else None
        self.loop: PipelineLoop | None = None
        self.result: RunResult | None = None
        self._total: int | None = None

    def prepare(self) -> PipelineLoop:
        """Load the source, check columns and policies, open the store: everything before work."""
        from modyn_store.core.store import Store

        if self.stream is None:
            self.stream = open_stream(self.config.source, self.data_dir) if self.table is None else \
                SourceStream.of_table(self.table)
        if self.table is None:
            self.table = self.stream.table  # the whole source where it was loaded whole, else None
        import policies

        stream = self.stream
        check_columns(self.config, stream.schema, policies.from_config("trigger", dict(self.config.trigger)))
        known = stream.table if stream.table is not None else stream.head  # head: only with a label map
        params = model_params(self.config, known)  # before a store is opened (or made)
        if self.config.source.kind != "store" and self.chunks is None:
            self._total = self.chunk_count()  # the chunk rule read on the event times, before a store is made
        store = self._store_arg
        if self.config.source.kind == "store" and self.chunks is None:
            store, versions = replay_store(self.config.source, store)  # its own versions, in place
            self.chunks = [ChunkVersion(i, rows, a, b) for i, (rows, a, b) in enumerate(versions)]
        if isinstance(store, (str, Path)):
            store = Store.open(str(store), create=True)
        if self.chunks is None:
            _refuse_used(store)
        self.store = store
        prepare_store(store, stream.head)  # the source's label map, before any row
        self.loop = PipelineLoop(self.config, store, model_params=params)
        return self.loop

    def warm_up(self) -> bool:
        """Pay one-time start-up on a sample of the stream (see :mod:`.warmup`); ``False`` if already warm."""
        from modyn_store.app.pipeline.warmup import warm_up

        loop = self.loop or self.prepare()
        assert self.stream is not None
        return warm_up(self.config, self.stream.head, loop.model_params)

    def run(self) -> Iterator[RunEvent]:
        """Replay the stream; yields progress events; sets :attr:`result` at the end.

        Start-up (compilation, first reads) is paid by :meth:`warm_up` first, outside the timed part.
        """
        from modyn_store.app.pipeline.running import pipeline_running

        loop = self.loop or self.prepare()
        self.warm_up()
        t0 = time.perf_counter()
        # a second run of this pipeline on this store (a replay of its own versions) is refused
        with threads(self.config.training.threads), pipeline_running(self.store, self.config.name):
            assert self.stream is not None
            if self.chunks is None:  # again, holding the pipeline: another run may have ingested meanwhile
                _refuse_used(self.store)
            if self.chunks is not None:
                total = len(self.chunks)
                steps: Iterator[tuple[ChunkVersion, DeletionEvent | None]] = ((c, None) for c in self.chunks)
            else:
                total = self._total if self._total is not None else self.chunk_count()
                steps = ingest(self.store, self.config, self.stream)
            rows = 0
            for i, (chunk, deleted) in enumerate(steps, start=1):
                rows += chunk.rows
                yield RunEvent("ingest", i, total, f"chunk {chunk.index}: {chunk.rows} rows")
                if deleted is not None:
                    yield RunEvent("delete", i, total, f"{deleted.keys.size} keys {deleted.mode}d; used by "
                                   f"{len(deleted.trainings)} trainings", deletion=deleted)
                for info in loop.process(chunk.start, chunk.end):
                    yield RunEvent("train", i, total, f"{info.training_id} {info.mode} on {info.n_keys} rows", info)
            yield RunEvent("evaluate", total, total, f"{len(loop.trainings)} models x {self.config.evaluation.slices} slices")
            t_eval = time.perf_counter()
            result, eid = evaluate_pipeline(self.store, self.config, loop.trainings)
            t_eval = time.perf_counter() - t_eval
        self.result = RunResult(self.config, self.store.uri, tuple(loop.trainings), result, eid,
                                time.perf_counter() - t0, rows, evaluation_seconds=t_eval)
        yield RunEvent("done", total, total, f"{len(loop.trainings)} trainings in {self.result.seconds:.1f} s")

    def chunk_count(self) -> int:
        """Chunks of the stream (``0`` when unknown before it is read: a streamed source); see
        :func:`~modyn_store.app.pipeline.stream.chunk_count`, which refuses a rule that does not
        fit the event times naming ``source.chunk``."""
        return chunk_count(self.config.source, self.stream, table=self.table)


def run_pipeline(config: PipelineConfig, store: Any, *, data_dir: str | Path | None = None,
                 on_event: Any = None) -> RunResult:
    """Run ``config`` in replay mode to the end and return its :class:`RunResult`."""
    runner = Runner(config, store, data_dir=data_dir)
    for ev in runner.run():
        if on_event is not None:
            on_event(ev)
    assert runner.result is not None
    return runner.result
