"""A sampled evaluation's 95% half-widths are kept in the catalog: ``modyn-store report`` shows the
run's ``± 95%`` numbers and bands; an ``evaluations`` table written before them still reports."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store import Store
from modyn_store.app.cli.main import main
from modyn_store.app.pipeline import parse_pipeline, run_pipeline
from modyn_store.app.pipeline.history import pipeline_results
from modyn_store.app.report.build import render_report
from modyn_store.core.trainings import Catalog
from modyn_store.core.verify import verify
from pipeline_helpers import tiny


def _pm_column(markdown: str) -> list[str]:
    """The ``± 95%`` cells of a report's summary table."""
    lines = [ln for ln in markdown.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    i = head.index("± 95%")
    width = len(lines[0].split("|"))
    return [[c.strip() for c in ln.strip("|").split("|")][i] for ln in lines[2:] if len(ln.split("|")) == width]


def _run(tmp_path: Path, metric: str = "accuracy") -> tuple[Any, Path]:
    cfg = parse_pipeline(tiny("smp", source={"dataset": "elec2", "limit": 1500, "chunk": "14d"},
                              trigger={"name": "time", "every": "14d"},
                              evaluation={"slices": 2, "sample": 40, "seed": 3, "metric": metric}))
    return run_pipeline(cfg, tmp_path / "s"), tmp_path / "s"


def test_report_from_the_store_shows_the_runs_margins(tmp_path: Path) -> None:
    res, path = _run(tmp_path)
    live = res.result
    assert live.margins and all(m > 0 for row in live.margins for m in row if not math.isnan(m))
    store = Store.open(str(path))
    evals = store.read_table("evaluations")
    assert evals is not None
    run_md = Path(render_report([live], tmp_path / "run").markdown).read_text()
    assert main(["report", str(path), "--out", str(tmp_path / "cli")]) == 0
    cli_md = (tmp_path / "cli" / "report.md").read_text()
    want = _pm_column(run_md)
    assert want and all(re.fullmatch(r"\d+\.\d{4}", v) for v in want)  # a number, not "-"
    assert _pm_column(cli_md) == want
    later = pipeline_results(store)[0]
    np.testing.assert_array_equal(np.array(later.margins), np.array(live.margins))
    assert set(evals.column("n").to_pylist()) == {40} and min(evals.column("population").to_pylist()) > 40


def test_a_later_evaluation_of_several_metrics_reports_the_configured_one(tmp_path: Path) -> None:
    import training

    res, path = _run(tmp_path, "loss")
    store = Store.open(str(path))
    live = res.result
    assert live.metric == "loss"
    m = training.evaluate(store, [t.training_id for t in res.trainings], training.time_slices(store, n=2),
                          inputs={"features": "features"}, metrics=("accuracy", "loss"))
    later = pipeline_results(store)[0]
    assert later.metric == "loss"  # the pipeline's, not the first row's (accuracy)
    assert later.higher_is_better is False
    np.testing.assert_array_equal(np.array(later.matrix), m.matrix("loss"))


def _old_rows(store: Store, eid: str, model: str, value: float) -> pa.Table:
    """Rows with the columns an ``evaluations`` table had before margins were kept."""
    return pa.table({"evaluation_id": [eid, eid], "model_id": [model, model], "slice": ["a", "b"],
                     "slice_start": [0.0, 10.0], "slice_end": [10.0, 20.0], "metric": ["accuracy"] * 2,
                     "value": [value, value], "n": pa.array([5, 5], pa.int64()),
                     "data_version": pa.array([1, 1], pa.int64())})


def test_an_evaluations_table_without_margins_still_reports(tmp_path: Path) -> None:
    res, path = _run(tmp_path)
    store = Store.open(str(path))
    ids = [t.training_id for t in res.trainings]
    # the store as an earlier release left it: the evaluations table without margin/population
    store._tables.drop("evaluations")
    with store.transaction("evaluate") as txn:
        txn.append("evaluations", pa.concat_tables([_old_rows(store, "e-old", t, 0.5) for t in ids]))
    assert "margin" not in store.read_table("evaluations").column_names  # type: ignore[union-attr]
    old = pipeline_results(store)[0]
    assert old.margins == () and all(v == 0.5 for row in old.matrix for v in row)
    assert main(["report", str(path), "--out", str(tmp_path / "old")]) == 0
    assert _pm_column((tmp_path / "old" / "report.md").read_text()) == ["-"]
    # a write without margins keeps the old table's columns; one with margins adds them (null before)
    cat = Catalog(store)
    plain = _old_rows(store, "x", ids[0], 0.6).drop_columns(["evaluation_id"])
    cat.record_evaluation(plain)
    assert "margin" not in store.read_table("evaluations").column_names  # type: ignore[union-attr]
    rows = plain.append_column("margin", pa.array([0.01, 0.02])).append_column("population", pa.array([9, 9]))
    eid = cat.record_evaluation(pa.concat_tables([rows.set_column(0, "model_id", pa.array([t, t]))
                                                  for t in ids]))
    table = store.read_table("evaluations")
    assert table is not None
    got = {(r["evaluation_id"] == eid, r["margin"], r["population"]) for r in table.to_pylist()}
    assert got == {(False, None, None), (True, 0.01, 9), (True, 0.02, 9)}
    new = pipeline_results(store)[0]
    assert [list(r) for r in new.margins] == [[0.01, 0.02]] * len(ids)
    assert verify(str(path), deep=True).findings == ()


def test_the_reported_metric_is_the_configured_one_else_a_fixed_order() -> None:
    from modyn_store.app.pipeline.history import report_metric

    assert report_metric({"loss", "accuracy"}, "loss") == "loss"
    assert report_metric({"loss", "accuracy"}, "f1") == "accuracy"  # not evaluated: the fixed order
    assert report_metric({"loss", "roc_auc"}) == "roc_auc"
    assert report_metric({"zeta", "beta"}) == "beta"
