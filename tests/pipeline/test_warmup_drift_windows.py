"""The warm-up runs a drift trigger's test even when its windows (in rows or, with ``window_time``, in
event time) are longer than the warm-up sample, so that its one-time cost (kernel compilation) is not charged to the first pipeline that uses it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pipeline_helpers import tiny

import policies.data_drift as data_drift
from modyn_store.app.pipeline.config import parse_pipeline
from modyn_store.app.pipeline.source import load_source, model_params
from modyn_store.app.pipeline.warmup import WARM_ROWS, warm_up


@pytest.mark.parametrize(("nested", "span"), [(False, None), (True, None), (False, "3650d"), (True, "3650d")],
                         ids=["window", "nested", "window_time", "nested_window_time"])
def test_a_drift_test_runs_during_warm_up(monkeypatch: pytest.MonkeyPatch, nested: bool, span: str | None) -> None:
    calls: list[int] = []
    original = data_drift.two_sample

    def counted(metric: str, ref: Any, cur: Any, **kw: Any) -> Any:
        calls.append(len(cur))
        return original(metric, ref, cur, **kw)

    monkeypatch.setattr(data_drift, "two_sample", counted)
    drift = {"name": "data_drift", "columns": ["features"], "metric": "mmd", "window": 3 * WARM_ROWS,
             "every": 3 * WARM_ROWS, "n_permutations": 100, "threshold": 0.01}
    if span is not None:  # an event-time window longer than the sample's span, instead of `window`
        drift.pop("window")
        drift.update(window_time=span)
    trig = {"name": "any", "triggers": [{"name": "time", "every": "56d"}, drift]} if nested else drift
    cfg = parse_pipeline(tiny(f"warm-drift-{nested}", trigger=trig))
    t = load_source(cfg.source)
    before = copy.deepcopy(cfg.trigger)
    assert warm_up(cfg, t, model_params(cfg, t), force=True) is True
    assert calls  # the drift statistic was computed on the sample
    assert cfg.trigger == before  # the pipeline's own trigger is unchanged
