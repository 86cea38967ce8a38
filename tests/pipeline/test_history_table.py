"""The trainings table shows a trigger reason whole, or marked as cut: a cut time must not read
as another time."""

from __future__ import annotations

from types import SimpleNamespace

from modyn_store.app.pipeline.history import REASON_WIDTH, trainings_table
from modyn_store.core.trainings import Cost


def _record(reason: str) -> SimpleNamespace:
    return SimpleNamespace(training_id="p-0000", cutoff=(3, 7), trigger={"reason": reason}, update_decision="{}",
                           parent_id=None, n_keys=10, cost=Cost(10, 1.0, 0.5), metrics={})


def test_a_time_with_nanoseconds_is_shown_whole() -> None:
    reason = "event time reached 2024-03-31T23:59:59.999999999Z"
    assert trainings_table([_record(reason)])[0]["trigger"] == reason


def test_a_longer_reason_is_marked_as_cut() -> None:
    reason = "drift: " + "x" * 100
    shown = trainings_table([_record(reason)])[0]["trigger"]
    assert len(shown) == REASON_WIDTH and shown.endswith("…") and reason.startswith(shown[:-1])
