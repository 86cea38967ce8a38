"""Every slice of a report has its own label, in `run` and in `report` alike."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from modyn_store import Store
from modyn_store.app.pipeline.config import parse_pipeline
from modyn_store.app.pipeline.history import pipeline_results
from modyn_store.app.pipeline.runner import run_pipeline


def _run(name: str, ts: pa.Array, slices: int = 4) -> tuple[tuple[str, ...], tuple[str, ...]]:
    n = len(ts)
    x = np.random.default_rng(0).standard_normal((n, 2)).astype(np.float32)
    t = pa.table({"t": ts, "y": (x[:, 0] > 0).astype(np.int64), "a": x[:, 0], "b": x[:, 1]})
    cfg = parse_pipeline({"name": "lab", "source": {"data": t, "ts": "t", "label": "y", "features": ["a", "b"],
                                                    "chunk": "n:100"},
                          "model": {"name": "logreg"}, "trigger": {"name": "data_amount", "every": 100},
                          "evaluation": {"slices": slices}})
    res = run_pipeline(cfg, f"memory://{name}")
    return tuple(res.result.slice_labels), tuple(pipeline_results(Store.open(f"memory://{name}"))[0].slice_labels)


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


def test_integer_years_are_labelled_by_the_first_year_each_slice_holds() -> None:
    """Four equal slices of the years 2015-2018 start at 2015, 2015.75, 2016.5 and 2017.25 and hold
    one year each; they were labelled 2015, 2015.8, 2016.5 and 2017.2 (the slice of 2018 read as
    one of 2017)."""
    years = pa.array(np.repeat(np.arange(2015, 2019), 150))
    run, report = _run("labels-years", years)
    assert run == report == ("2015", "2016", "2017", "2018")


def test_integer_slices_narrower_than_one_keep_their_numbers() -> None:
    """Six slices of three years: some hold no year, so no slice is named by a year it lacks."""
    years = pa.array(np.repeat(np.arange(2015, 2018), 200))
    run, _ = _run("labels-narrow", years, slices=6)
    assert len(set(run)) == len(run)
    assert any("." in label for label in run)
