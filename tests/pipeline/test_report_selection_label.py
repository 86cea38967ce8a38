"""The report rebuilt from a store's catalog names the pipeline's own selection strategy, as the
run's report does, also when the update policy's scope selected the first training's rows."""

from __future__ import annotations

from modyn_store import Store
from modyn_store.app.pipeline import parse_pipeline
from modyn_store.app.pipeline.history import pipeline_results
from modyn_store.app.pipeline.runner import run_pipeline

from tests.pipeline.pipeline_helpers import tiny


def test_catalog_report_names_the_configured_selection() -> None:
    cfg = parse_pipeline(tiny("scoped", source={"dataset": "elec2", "limit": 1500, "chunk": "14d"},
                              update={"name": "periodic_retrain", "every": 2, "retrain_scope": "all_data"},
                              evaluation={"slices": 3}))
    res = run_pipeline(cfg, "memory://report-selection-label")
    (rebuilt,) = pipeline_results(Store.open("memory://report-selection-label"))
    assert res.result.selection == "new_data"
    assert (rebuilt.trigger, rebuilt.selection, rebuilt.update) == \
        (res.result.trigger, res.result.selection, res.result.update)
    assert rebuilt.matrix == res.result.matrix
