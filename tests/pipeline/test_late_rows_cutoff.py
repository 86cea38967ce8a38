"""A training's cutoff time is the latest event time it saw, also when a later version holds late rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from modyn_store import Store
from modyn_store.app.datasets.columns import ColumnMap
from modyn_store.app.datasets.user import append_stream
from modyn_store.app.pipeline import parse_pipeline
from modyn_store.app.pipeline.runner import run_pipeline
from modyn_store.app.report.build import current_model_curve
from modyn_store.core.trainings import Catalog


def _rows(lo: int, n: int = 50) -> pa.Table:
    x = np.random.default_rng(lo).standard_normal((n, 2))
    t = np.arange(lo, lo + n)
    return pa.table({"t": t, "k": t, "y": (x[:, 0] > 0).astype(np.int64), "a": x[:, 0], "b": x[:, 1]})


def test_late_version_does_not_move_the_cutoff_time_back(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    for lo in (0, 100, 50):  # the third version arrives late: event times before the second's
        append_stream(store, _rows(lo), ColumnMap(ts="t", label="y", key="k"))
    cfg = parse_pipeline({"name": "late", "source": {"store": str(tmp_path / "s")}, "model": {"name": "logreg"},
                          "trigger": {"name": "data_amount", "every": 150}, "selection": {"name": "all_data"},
                          "training": {"epochs": 1}, "evaluation": {"slices": 3}})
    res = run_pipeline(cfg, None)
    (t,) = res.trainings
    trained = Catalog(Store.open(str(tmp_path / "s"))).train_set(t.training_id).keys
    assert t.cutoff_ts == int(trained.max()) == 149
    # the model trained on rows of the last slice: it serves no slice (no evaluation on its own rows)
    assert res.result.triggers[0].last_slice == 2
    assert all(np.isnan(v) for v in current_model_curve(res.result))
