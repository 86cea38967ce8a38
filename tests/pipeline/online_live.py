"""The live pipeline the online resume tests run: elec2-shaped batches from ``online_writer``
followed by an online runner with ``all_data`` selection and deletion-aware retraining."""

from __future__ import annotations

from typing import Any

from online_writer import batch

from modyn_store import Store
from modyn_store.app.pipeline import parse_pipeline
from modyn_store.app.pipeline.online import OnlineRunner


def live_config(trigger: dict[str, Any]) -> dict[str, Any]:
    """The pipeline ``live`` with ``trigger``."""
    return {"name": "live", "source": {"dataset": "elec2"}, "model": {"name": "logreg", "params": {"n_classes": 2}},
            "trigger": trigger, "selection": {"name": "all_data"}, "update": {"name": "deletion_aware_retrain"},
            "training": {"epochs": 1, "batch_size": 64}}


def grow(store: Store, a: int, b: int) -> None:
    """Append batches ``a..b-1`` of 50 rows, one version each."""
    for i in range(a, b):
        store.append(batch(i, 50))


def follow(store: Store, trigger: dict[str, Any], runner: OnlineRunner | None = None) -> OnlineRunner:
    """Follow ``store`` until it is idle, with ``runner`` or a new runner of ``live_config(trigger)``."""
    runner = runner or OnlineRunner(parse_pipeline(live_config(trigger)), store, poll=0.01)
    runner.run(idle_timeout=0)
    return runner
