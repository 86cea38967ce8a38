"""Every slice of a report has its own label, in `run` and in `report` alike."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from modyn_store import Store
from modyn_store.app.pipeline.config import parse_pipeline
from modyn_store.app.pipeline.history import pipeline_results
from modyn_store.app.pipeline.runner import run_pipeline


def _run(name: str, ts: pa.Array) -> tuple[tuple[str, ...], tuple[str, ...]]:
    n = len(ts)
    x = np.random.default_rng(0).standard_normal((n, 2)).astype(np.float32)
    t = pa.table({"t": ts, "y": (x[:, 0] > 0).astype(np.int64), "a": x[:, 0], "b": x[:, 1]})
    cfg = parse_pipeline({"name": "lab", "source": {"data": t, "ts": "t", "label": "y", "features": ["a", "b"],
                                                    "chunk": "n:100"},
                          "model": {"name": "logreg"}, "trigger": {"name": "data_amount", "every": 100},
                          "evaluation": {"slices": 4}})
    res = run_pipeline(cfg, f"memory://{name}")
    return res.result.slice_labels, pipeline_results(Store.open(f"memory://{name}"))[0].slice_labels


def test_numeric_event_times_close_together() -> None:
    run, report = _run("labels-num", pa.array(1_600_000_000 + np.arange(600) * 60))
    assert len(set(run)) == 4
    assert run == report
    assert run[0] == "1600000000" and run[1] == "1600008985"


def test_timestamps_within_one_day() -> None:
    ts = pa.array((1_600_000_000 + np.arange(600) * 60) * 1_000_000, pa.timestamp("us"))
    run, report = _run("labels-ts", ts)
    assert len(set(run)) == 4
    assert run == report
    assert run[0].startswith("2020-09-13T12:26")
