"""A store's report pairs each pipeline's costs and metrics from the same trainings."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from modyn_store import Store
from modyn_store.app.pipeline.config import parse_pipeline
from modyn_store.app.pipeline.evaluate import evaluate_pipeline
from modyn_store.app.pipeline.history import pipeline_results, pipeline_trainings, unevaluated
from modyn_store.app.pipeline.online import OnlineRunner

CFG = {"name": "live", "source": {"dataset": "elec2"}, "model": {"name": "logreg", "params": {"n_classes": 2}},
       "trigger": {"name": "data_amount", "every": 20}, "evaluation": {"slices": 3}}


def _append(store: Store, i: int) -> None:
    x = np.random.default_rng(i).standard_normal((30, 2)).astype(np.float32)
    store.append(pa.table({"ts": np.arange(30 * i, 30 * i + 30), "label": (x[:, 0] > 0).astype(np.int64),
                           "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))


def test_trainings_after_the_latest_evaluation_are_not_mixed_into_its_row() -> None:
    store = Store.open("memory://history-stale", create=True)
    cfg = parse_pipeline(CFG)
    _append(store, 0)
    _append(store, 1)
    first = OnlineRunner(cfg, store, poll=0.01)
    first.run(idle_timeout=0.05)
    assert first.loop is not None
    evaluated = [t.training_id for t in first.loop.trainings]
    evaluate_pipeline(store, cfg, first.loop.trainings)
    for i in range(2, 5):
        _append(store, i)
    OnlineRunner(cfg, store, poll=0.01).run(idle_timeout=0.05)
    all_ids = [r.training_id for r in pipeline_trainings(store)["live"]]
    assert len(all_ids) > len(evaluated)
    res = pipeline_results(store)[0]
    assert len(res.triggers) == len(evaluated)
    assert not any(np.isnan(v) for row in res.matrix for v in row)
    recs = pipeline_trainings(store)["live"][: len(evaluated)]
    assert res.total_samples == sum(r.cost.samples for r in recs)
    assert unevaluated(store) == {"live": all_ids[len(evaluated):]}


def test_a_report_from_the_store_shows_the_costs_the_run_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The run's report and one made later from the catalog agree on every training's wall and
    bookkeeping seconds: both count the training through its checkpoint write (materialization
    included), not only the optimization loop."""
    store = Store.open(str(tmp_path / "s"), create=True)
    cfg = parse_pipeline(CFG)
    for i in range(3):
        _append(store, i)
    run = OnlineRunner(cfg, store, poll=0.01)
    run.run(idle_timeout=0.05)
    assert run.loop is not None and run.loop.trainings
    live, _ = evaluate_pipeline(store, cfg, run.loop.trainings)
    later = pipeline_results(store)[0]
    assert (later.trigger, later.selection, later.update) == (live.trigger, live.selection, live.update)
    assert later.trigger == "data_amount(every=20)"  # its parameters too, as the run's report
    for a, b, t in zip(live.triggers, later.triggers, run.loop.trainings, strict=True):
        assert (a.wall_seconds, a.bookkeeping_seconds) == (b.wall_seconds, b.bookkeeping_seconds)
        assert b.wall_seconds > t.train_seconds + t.trigger_seconds + t.select_seconds  # more than the loop
