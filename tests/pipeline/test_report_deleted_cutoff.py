"""A model whose rows all lie before the first evaluation slice (they were deleted before the
evaluation) is the model in service on that first slice: the report's curve, mean metric and the
report rebuilt from the store score it there instead of leaving the slice out."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from modyn_store import Store
from modyn_store.app.pipeline.config import parse_pipeline
from modyn_store.app.pipeline.evaluate import evaluate_pipeline
from modyn_store.app.pipeline.history import pipeline_results
from modyn_store.app.pipeline.online import OnlineRunner
from modyn_store.app.report.build import current_model_curve, summarize


def _append(store: Store, i: int) -> None:
    x = np.random.default_rng(i).standard_normal((30, 2)).astype(np.float32)
    store.append(pa.table({"ts": np.arange(30 * i, 30 * i + 30), "label": (x[:, 0] > 0).astype(np.int64),
                           "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))


def test_model_trained_on_rows_deleted_since_serves_the_first_slice() -> None:
    cfg = parse_pipeline({"name": "p", "source": {"dataset": "elec2"},
                          "model": {"name": "logreg", "params": {"n_classes": 2}},
                          "trigger": {"name": "data_amount", "every": 30}, "evaluation": {"slices": 3}})
    store = Store.open("memory://report-deleted-cutoff", create=True)
    _append(store, 0)
    OnlineRunner(cfg, store, poll=0.01).run(idle_timeout=0.05)
    store.delete(where="ts < 30")  # the first model's rows: the slices start at 30
    for i in range(1, 4):
        _append(store, i)
    run = OnlineRunner(cfg, store, poll=0.01)
    run.run(idle_timeout=0.05)
    assert run.loop is not None
    assert [t.cutoff_ts for t in run.loop.trainings][:2] == [29, 59]
    live, _ = evaluate_pipeline(store, cfg, run.loop.trainings)
    later = pipeline_results(store)[0]
    for res in (live, later):
        assert res.slice_labels[0] == "30"
        curve = current_model_curve(res)
        assert not math.isnan(curve[0]) and curve[0] == res.matrix[0][0]  # the first model served slice 0
        assert curve[1] == res.matrix[1][1]
        assert math.isclose(summarize([res])[0].mean_metric, sum(curve) / len(curve))
