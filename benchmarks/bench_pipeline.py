"""Pipeline benchmarks (asv): validating definitions and replaying small Elec2 pipelines.

``time_`` benchmarks measure the replay (ingest, triggers, selection, training, evaluation) of
the first ``rows`` half-hours of the bundled Elec2 stream; ``track_`` benchmarks record the mean
accuracy of each update policy, so a change that makes pipelines faster but worse shows up.
Run as a script for one quick pass::

    python benchmarks/bench_pipeline.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

from modyn_store.app.pipeline import parse_pipeline, run_pipeline  # noqa: E402
from modyn_store.app.report.build import summarize  # noqa: E402

UPDATES = {
    "finetune": ({"name": "new_data"}, {"name": "finetune"}),
    "retrain": ({"name": "all_data"}, {"name": "retrain"}),
    "periodic_retrain": ({"name": "new_data"}, {"name": "periodic_retrain", "every": 3, "retrain_scope": "all_data"}),
}


def _cfg(update: str, rows: int) -> Any:
    selection, upd = UPDATES[update]
    return parse_pipeline({
        "name": f"bench-{update}",
        "source": {"dataset": "elec2", "limit": rows, "chunk": "7d"},
        "model": {"name": "mlp", "params": {"hidden": [16]}},
        "trigger": {"name": "time", "every": "28d"},
        "selection": selection, "update": upd,
        "training": {"epochs": 1, "batch_size": 128},
        "evaluation": {"slices": 6},
    })


class ValidateDefinition:
    """Parsing and validating a pipeline definition (no data is read)."""

    def time_parse_pipeline(self) -> None:
        _cfg("periodic_retrain", 5000)


class ReplayElec2:
    """One replay of the first ``rows`` Elec2 rows per update policy."""

    params = [["finetune", "retrain", "periodic_retrain"], [5000, 15000]]
    param_names = ["update", "rows"]
    timeout = 600

    def setup(self, update: str, rows: int) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.cfg = _cfg(update, rows)

    def teardown(self, update: str, rows: int) -> None:
        self.tmp.cleanup()

    def time_replay(self, update: str, rows: int) -> None:
        run_pipeline(self.cfg, os.path.join(self.tmp.name, "s"))

    def track_mean_accuracy(self, update: str, rows: int) -> float:
        res = run_pipeline(self.cfg, os.path.join(self.tmp.name, "t"))
        return summarize([res.result])[0].mean_metric


if __name__ == "__main__":
    for upd in UPDATES:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            res = run_pipeline(_cfg(upd, 15000), os.path.join(d, "s"))
            row = summarize([res.result])[0]
            print(f"{upd:>17}: {time.perf_counter() - t0:6.1f} s, {row.n_triggers} trainings, "
                  f"{row.samples_trained} samples, mean accuracy {row.mean_metric:.3f}")
