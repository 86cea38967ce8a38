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

import bisect
import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store.app.pipeline.config import PipelineConfig
from modyn_store.app.pipeline.loop import TrainingInfo
from modyn_store.app.report.records import PipelineResult, TriggerRecord

__all__ = ["cutoff_slice", "evaluate_pipeline", "slice_labels", "threads"]


def cutoff_slice(starts: Sequence[float] | np.ndarray, cutoff: float | int) -> int:
    """The slice (given by its ascending ``starts``) that holds a training's cutoff time: the
    last one starting at or before it; -1 for a cutoff before every start (the model saw no row of
    any slice, e.g. its rows were deleted since, so it serves from the first slice on); 0 for a
    cutoff that is not a finite number.

    An integer cutoff is compared with each float start exactly (Python compares an int with a
    float without rounding), as ``training.evaluate`` compares integer event times: a cutoff of
    nanoseconds just below an edge stays in the slice before it.

    >>> cutoff_slice([0.0, 2.0**60], 2**60 - 1), cutoff_slice([0.0, 2.0**60], 2**60)
    (0, 1)
    """
    exact = isinstance(cutoff, (int, np.integer)) and not isinstance(cutoff, bool)
    if not exact and not math.isfinite(cutoff):
        return 0
    return max(bisect.bisect_right([float(s) for s in starts], int(cutoff) if exact else float(cutoff)) - 1, -1)


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
    starts = np.array([s.start for s in slices])
    labels = slice_labels(store, starts.tolist())
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
        recs.append(TriggerRecord(t.index, t.cutoff[0], t.samples, t.train_seconds,
                                  slice_index=cutoff_slice(starts, t.cutoff_ts),
                                  forward_passes=t.forward_passes, rows_scanned=t.rows_scanned,
                                  wall_seconds=t.wall_seconds, bookkeeping_seconds=t.bookkeeping_seconds,
                                  trigger_seconds=t.trigger_seconds, select_seconds=t.select_seconds,
                                  score_seconds=t.score_seconds))
    result = PipelineResult(config.name, desc["trigger"], desc["selection"], desc["update"], recs, matrix, labels,
                            metric=ev.metric, higher_is_better=ev.metric != "loss", margins=margins)
    return result, eid


def slice_labels(store: Any, starts: Sequence[float]) -> list[str]:
    """A distinct label per slice start: dates (finer when slices are shorter than a day) for
    temporal event times; for integer event times the first integer each slice holds (a slice
    from 2015.75 of survey years holds 2016 on, and is labelled 2016), where every slice holds
    one; else the numbers with as many digits as it takes to tell them apart."""
    schema = store.schema
    t = schema.field("ts").type if schema is not None and "ts" in schema.names else None
    labels: list[str] = []
    if t is not None and pa.types.is_integer(t) and all(math.isfinite(float(v)) for v in starts):
        # an integer event time is in a slice when it is at or after the float start (compared
        # exactly, see cutoff_slice): the first one is the start's ceiling; distinct ceilings
        # mean every slice holds an integer
        labels = [str(math.ceil(float(v))) for v in starts]
        if len(set(labels)) == len(labels):
            return labels
    if t is not None and (pa.types.is_timestamp(t) or pa.types.is_date(t)):
        unit = t.unit if pa.types.is_timestamp(t) else "us"  # dates are compared as microseconds
        values = np.array([int(v) for v in starts], dtype=f"datetime64[{unit}]")
        for res in ("D", "m", "s", unit):
            labels = [str(v) for v in values.astype(f"datetime64[{res}]")]
            if len(set(labels)) == len(labels):
                break
        return labels
    finite = [abs(float(v)) for v in starts if np.isfinite(v)]
    whole = len(str(int(max(finite)))) if finite and max(finite) < 1e16 else 1  # never round the integer part
    for digits in range(max(4, whole), max(18, whole + 1)):
        labels = [np.format_float_positional(float(v), precision=digits, unique=False, fractional=False, trim="-")
                  if abs(float(v)) < 1e16 else f"{float(v):.{digits}g}" for v in starts]
        if len(set(labels)) == len(labels):
            break
    return labels
