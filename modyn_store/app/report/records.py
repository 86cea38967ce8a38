"""The records a benchmark grid produces: one :class:`TriggerRecord` per training, one
:class:`PipelineResult` per pipeline, one :class:`SummaryRow` per line of the results table.

Definitions (current model, mean metric, cost) are in :mod:`modyn_store.app.report.build`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modyn_store.core.errors import InvalidArgumentError

__all__ = ["COSTS", "COST_LABELS", "PipelineResult", "SummaryRow", "TriggerRecord"]

COSTS = ("passes", "wall", "train")
COST_LABELS = {
    "passes": "samples trained + scoring forward passes",
    "wall": "wall seconds (trigger, selection, scoring, loading, training)",
    "train": "train seconds (optimization loop)",
}


@dataclass(frozen=True)
class TriggerRecord:
    """One training of a pipeline.

    Parameters
    ----------
    index:
        Trigger number (0, 1, ...), equal to the model's row in the evaluation matrix.
    data_version:
        The store version the model was trained on.
    n_samples:
        Samples trained on (summed over epochs).
    train_seconds:
        Wall-clock training time.
    slice_index:
        The last time slice whose data the model saw; the model serves from slice
        ``slice_index + 1`` on (``-1``: it saw none, and serves from the first slice on).
        ``None`` means ``index`` (one trigger per slice).
    forward_passes:
        Samples passed forward without a gradient for the selection (scoring).
    rows_scanned:
        Rows read for the trigger since the previous training plus rows materialized.
    wall_seconds:
        Everything the pipeline did for this trigger; ``None`` means ``train_seconds``.
    bookkeeping_seconds:
        The part of ``wall_seconds`` that is neither optimization nor scoring forward passes
        (deltas, trigger, selection, materialization, checkpoint and catalog writes).
    trigger_seconds:
        Delta reads and trigger decisions since the previous training (part of bookkeeping).
    select_seconds:
        The selection, including its scoring passes (``score_seconds`` of it).
    score_seconds:
        Scoring forward passes of the selection (not bookkeeping).
    """

    index: int
    data_version: int
    n_samples: int
    train_seconds: float
    slice_index: int | None = None
    forward_passes: int = 0
    rows_scanned: int = 0
    wall_seconds: float | None = None
    bookkeeping_seconds: float = 0.0
    trigger_seconds: float = 0.0
    select_seconds: float = 0.0
    score_seconds: float = 0.0

    def __post_init__(self) -> None:
        for name in ("n_samples", "forward_passes", "rows_scanned"):
            if getattr(self, name) < 0:
                raise InvalidArgumentError(name, getattr(self, name), "an integer >= 0")
        for name in ("train_seconds", "bookkeeping_seconds", "trigger_seconds", "select_seconds", "score_seconds"):
            if not getattr(self, name) >= 0:
                raise InvalidArgumentError(name, getattr(self, name), "a number >= 0")
        if self.wall_seconds is not None and not self.wall_seconds >= 0:
            raise InvalidArgumentError("wall_seconds", self.wall_seconds, "a number >= 0 or None")

    @property
    def wall(self) -> float:
        """``wall_seconds``, or ``train_seconds`` when it is not given."""
        return self.train_seconds if self.wall_seconds is None else self.wall_seconds

    @property
    def selection_bookkeeping(self) -> float:
        """Seconds of the selection other than its scoring forward passes."""
        return max(0.0, self.select_seconds - self.score_seconds)

    @property
    def loading_seconds(self) -> float:
        """The rest of bookkeeping: materializing the train set, checkpoint and catalog writes."""
        return max(0.0, self.bookkeeping_seconds - self.trigger_seconds - self.selection_bookkeeping)

    @property
    def passes(self) -> int:
        """Samples trained plus scoring forward passes (the deterministic cost)."""
        return self.n_samples + self.forward_passes

    @property
    def last_slice(self) -> int:
        """``slice_index``, or ``index`` when it is not given."""
        return self.index if self.slice_index is None else self.slice_index


@dataclass(frozen=True)
class PipelineResult:
    """The outcome of one pipeline of a benchmark grid (see the module docstring).

    Sequences are stored as tuples; ``matrix`` becomes a tuple of tuples of floats (``NaN`` for a
    cell not evaluated) with one row per trigger and one column per entry of ``slice_labels``.
    ``margins`` (same shape, or empty) holds the half-widths of the 95% confidence intervals of
    cells measured on an evaluation sample (0 where the whole slice was evaluated).
    """

    name: str
    trigger: str
    selection: str
    update: str
    triggers: Sequence[TriggerRecord]
    matrix: Sequence[Sequence[float]]
    slice_labels: Sequence[str]
    metric: str = "accuracy"
    higher_is_better: bool = True
    margins: Sequence[Sequence[float]] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "triggers", tuple(self.triggers))
        margins = tuple(tuple(float(v) for v in row) for row in self.margins)
        object.__setattr__(self, "margins", margins)
        if margins and [len(r) for r in margins] != [len(self.slice_labels)] * len(self.triggers):
            raise InvalidArgumentError("margins", f"<{len(margins)} rows>", "empty or the shape of matrix")
        object.__setattr__(self, "slice_labels", tuple(str(s) for s in self.slice_labels))
        rows = tuple(tuple(float(v) for v in row) for row in self.matrix)
        object.__setattr__(self, "matrix", rows)
        if len(rows) != len(self.triggers):
            raise InvalidArgumentError("matrix", f"<{len(rows)} rows>", f"one row per trigger ({len(self.triggers)})")
        for i, row in enumerate(rows):
            if len(row) != len(self.slice_labels):
                raise InvalidArgumentError(f"matrix[{i}]", f"<{len(row)} values>", f"one per slice ({len(self.slice_labels)})")
        for i, t in enumerate(self.triggers):
            if t.index != i:
                raise InvalidArgumentError(f"triggers[{i}].index", t.index, f"{i} (triggers in order)")

    @property
    def total_samples(self) -> int:
        """Samples trained over all triggers."""
        return sum(t.n_samples for t in self.triggers)

    @property
    def total_seconds(self) -> float:
        """Train seconds over all triggers."""
        return float(sum(t.train_seconds for t in self.triggers))

    @property
    def total_passes(self) -> int:
        """Samples trained plus scoring forward passes over all triggers (deterministic)."""
        return sum(t.passes for t in self.triggers)

    @property
    def total_wall(self) -> float:
        """Wall seconds over all triggers (trigger, selection, scoring, loading, training)."""
        return float(sum(t.wall for t in self.triggers))

    def cost(self, kind: str = "passes") -> float:
        """The pipeline's cost in one of :data:`COSTS`."""
        if kind not in COSTS:
            raise InvalidArgumentError("cost", kind, f"one of {COSTS}")
        return float(self.total_passes) if kind == "passes" else self.total_wall if kind == "wall" else self.total_seconds


@dataclass(frozen=True)
class SummaryRow:
    """One row of the results table."""

    name: str
    trigger: str
    selection: str
    update: str
    n_triggers: int
    samples_trained: int
    train_seconds: float
    mean_metric: float
    final_metric: float
    pareto: bool
    mean_margin: float = float("nan")
    forward_passes: int = 0
    rows_scanned: int = 0
    wall_seconds: float = 0.0
    bookkeeping_seconds: float = 0.0
    cost: float = 0.0
