"""Evaluate a pipeline's models on the time slices of its stream, and run torch with a thread budget.

:func:`evaluate_pipeline` evaluates every model of a run on every time slice
(``training.evaluate``, recorded in the catalog) and builds the report row
(:class:`~modyn_store.app.report.records.PipelineResult`) with each training's cost.

Example
-------
>>> from modyn_store.app.pipeline.evaluate import threads
>>> import torch
>>> with threads(1):
...     torch.get_num_threads()
1
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store.app.pipeline.config import PipelineConfig
from modyn_store.app.pipeline.loop import TrainingInfo
from modyn_store.app.report.records import PipelineResult, TriggerRecord

__all__ = ["evaluate_pipeline", "threads"]


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads inside the block (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate_pipeline(store: Any, config: PipelineConfig, trainings: Sequence[TrainingInfo], *,
                      slices: Sequence[Any] | None = None, record: bool = True) -> tuple[PipelineResult, str | None]:
    """Every model of ``trainings`` on every time slice; returns the report row and the evaluation id."""
    import training

    ev = config.evaluation
    if slices is None:
        slices = training.time_slices(store, n=ev.slices)
    labels = [_slice_label(store, s) for s in slices]
    starts = np.array([s.start for s in slices])
    desc = config.describe()
    eid = None
    if trainings:
        m = training.evaluate(store, [t.training_id for t in trainings], slices, inputs=dict(config.model.inputs),
                              metrics=(ev.metric,), record=record, sample=ev.eval_sample())
        matrix = m.matrix(ev.metric).tolist()
        margins = m.margin(ev.metric).tolist()
        eid = m.evaluation_id
    else:
        matrix, margins = [], []
    recs = []
    for t in trainings:
        s = int(np.searchsorted(starts, t.cutoff_ts, side="right") - 1) if np.isfinite(t.cutoff_ts) else 0
        recs.append(TriggerRecord(t.index, t.cutoff[0], t.samples, t.train_seconds, slice_index=max(s, 0),
                                  forward_passes=t.forward_passes, rows_scanned=t.rows_scanned,
                                  wall_seconds=t.wall_seconds, bookkeeping_seconds=t.bookkeeping_seconds,
                                  trigger_seconds=t.trigger_seconds, select_seconds=t.select_seconds,
                                  score_seconds=t.score_seconds))
    result = PipelineResult(config.name, desc["trigger"], desc["selection"], desc["update"], recs, matrix, labels,
                            metric=ev.metric, higher_is_better=ev.metric != "loss", margins=margins)
    return result, eid


def _slice_label(store: Any, s: Any) -> str:
    schema = store.schema
    t = schema.field("ts").type if schema is not None else None
    if t is not None and pa.types.is_timestamp(t):
        unit = {"s": "s", "ms": "ms", "us": "us", "ns": "ns"}[t.unit]
        return str(np.array(int(s.start), dtype=f"datetime64[{unit}]").astype("datetime64[D]"))
    return f"{s.start:.4g}"
