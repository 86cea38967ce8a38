"""What a pipeline records of each training: :class:`TrainingInfo`, its cost, its selection seed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modyn_store.core._plainjson import read_json
from modyn_store.core.errors import CorruptionError

__all__ = ["TrainingInfo", "recorded_cost", "recorded_decision", "selection_seed"]


@dataclass(frozen=True)
class TrainingInfo:
    """One training of a pipeline run (what the report and the resume logic need).

    Cost comes in deterministic units (the same for the same configuration and data, whatever
    else runs): ``samples`` trained (over all epochs), ``forward_passes`` of scoring for the
    selection, ``rows_scanned`` (delta rows read for the trigger since the previous training plus
    the rows materialized for training and scoring); and in wall seconds: ``wall_seconds`` is
    everything since the previous training (delta reads, trigger, selection with scoring,
    materialization, training, checkpoint and catalog writes), ``train_seconds`` the optimization
    loop alone, ``bookkeeping_seconds`` what is neither optimization nor scoring forward passes.
    """

    index: int
    training_id: str
    cutoff: tuple[int, int]
    #: the latest event time of the rows up to the cutoff (late rows of a later version do not
    #: move it back; int for integer and temporal times, exactly; NaN when no row had one yet)
    cutoff_ts: float | int
    mode: str
    n_keys: int
    samples: int
    train_seconds: float
    wall_seconds: float
    reason: str = ""
    adopted: bool = False
    forward_passes: int = 0
    rows_scanned: int = 0
    trigger_seconds: float = 0.0
    select_seconds: float = 0.0
    score_seconds: float = 0.0
    bookkeeping_seconds: float = 0.0

    def cost(self) -> dict[str, float]:
        """The cost fields as a plain mapping (stored with the training in the catalog)."""
        return {"samples": self.samples, "forward_passes": self.forward_passes, "rows_scanned": self.rows_scanned,
                "wall_s": self.wall_seconds, "train_s": self.train_seconds, "trigger_s": self.trigger_seconds,
                "select_s": self.select_seconds, "score_s": self.score_seconds,
                "bookkeeping_s": self.bookkeeping_seconds}


def selection_seed(training_seed: int, index: int) -> int:
    """The selection seed of a pipeline's ``index``-th training: ``training_seed * 1_000_003 +
    index`` taken modulo 2^63, the range of selection seeds (so that every training seed the
    configuration allows selects, and the same as before the range was checked).

    >>> selection_seed(7, 2), selection_seed(2**63 - 1, 0) == 2**63 - 1_000_003
    (7000023, True)
    """
    return (int(training_seed) * 1_000_003 + int(index)) % (1 << 63)


def recorded_cost(record: Any) -> dict[str, float]:
    """The cost a pipeline stored with a training (older records: the optimization loop only)."""
    raw = record.metrics.get("cost") if isinstance(record.metrics, Mapping) else None
    raw = raw if isinstance(raw, Mapping) else {}
    out = {k: float(raw.get(k, 0.0)) for k in ("forward_passes", "rows_scanned", "trigger_s", "select_s", "score_s")}
    # the training's time through its checkpoint write (older records: the optimization loop)
    train_s = record.metrics.get("train_wall_s") if isinstance(record.metrics, Mapping) else None
    out["wall_s"] = out["trigger_s"] + out["select_s"] + float(
        train_s if isinstance(train_s, (int, float)) else record.cost.wall_s)
    return out


def recorded_decision(record: Any) -> dict[str, Any]:
    """The update decision a pipeline stored with a training (a JSON mapping; ``{}`` when none).
    One that does not decode to a mapping (damaged, or crafted: nested too deep for the decoder)
    is :class:`~modyn_store.core.errors.CorruptionError` naming the training."""
    try:
        decision = read_json(record.update_decision or "{}")
    except ValueError as exc:
        raise CorruptionError(f"training {record.training_id!r}: its recorded update decision is not "
                              f"readable JSON ({exc})") from exc
    if not isinstance(decision, dict):
        raise CorruptionError(f"training {record.training_id!r}: its recorded update decision is a "
                              f"{type(decision).__name__}, not a mapping")
    return decision
