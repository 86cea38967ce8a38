"""The records a benchmark grid produces: one :class:`TriggerRecord` per training, one
:class:`PipelineResult` per pipeline, one :class:`SummaryRow` per line of the results table.

Definitions (current model, mean metric, cost) are in :mod:`modyn_store.app.report.build`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modyn_store.core.errors import InvalidArgumentError

__all__ = ["PipelineResult", "SummaryRow", "TriggerRecord"]


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
        ``slice_index + 1`` on. ``None`` means ``index`` (one trigger per slice).
    """

    index: int
    data_version: int
    n_samples: int
    train_seconds: float
    slice_index: int | None = None

    def __post_init__(self) -> None:
        if self.n_samples < 0:
            raise InvalidArgumentError("n_samples", self.n_samples, "an integer >= 0")
        if not self.train_seconds >= 0:
            raise InvalidArgumentError("train_seconds", self.train_seconds, "a number >= 0")

    @property
    def last_slice(self) -> int:
        """``slice_index``, or ``index`` when it is not given."""
        return self.index if self.slice_index is None else self.slice_index


@dataclass(frozen=True)
class PipelineResult:
    """The outcome of one pipeline of a benchmark grid (see the module docstring).

    Sequences are stored as tuples; ``matrix`` becomes a tuple of tuples of floats (``NaN`` for a
    cell not evaluated) with one row per trigger and one column per entry of ``slice_labels``.
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "triggers", tuple(self.triggers))
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
