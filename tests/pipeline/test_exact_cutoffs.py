"""A training's cutoff time is the exact event time of the last row it saw: integer times of
nanoseconds (2^60 and beyond, where float64 values are 256 apart) are not rounded, so the
rows after a cutoff are evaluated once and a training is placed in the slice that holds its
cutoff."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.app.datasets.columns import ColumnMap
from modyn_store.app.datasets.user import append_stream
from modyn_store.app.pipeline import parse_pipeline
from modyn_store.app.pipeline.evaluate import cutoff_slice
from modyn_store.app.pipeline.online import OnlineRunner
from modyn_store.core.trainings import Catalog

#: nanoseconds of a present-day time, not a float64 value (those are 256 apart here)
BASE = 1_700_000_000_000_000_001


def _chunk(i: int, kind: pa.DataType, n: int = 400) -> pa.Table:
    rng = np.random.default_rng(i)
    x = rng.standard_normal((n, 2))
    y = np.where(x[:, 0] > 0, "up", "down")
    # consecutive nanoseconds: any rounding to float64 moves rows across a cutoff
    t = pa.array(BASE + np.arange(i * n, (i + 1) * n)).cast(kind)
    return pa.table({"t": t, "y": y, "a": x[:, 0], "b": x[:, 1]})


@pytest.mark.parametrize("kind", [pa.int64(), pa.timestamp("ns")], ids=["int64", "timestamp-ns"])
def test_online_windows_after_integer_cutoffs_hold_every_row_once(tmp_path: Path, kind: pa.DataType) -> None:
    store = Store.open(str(tmp_path / "live"), create=True)
    for i in range(5):
        append_stream(store, _chunk(i, kind), ColumnMap(ts="t", label="y"))
    cfg = parse_pipeline({"name": "ns", "source": {"store": str(tmp_path / "live")}, "model": {"name": "logreg"},
                          "trigger": {"name": "data_amount", "every": 600}, "training": {"epochs": 1}})
    runner = OnlineRunner(cfg, store, poll=0.01)
    assert runner.run(idle_timeout=0.05) == 3
    assert runner.loop is not None
    cutoffs = [t.cutoff_ts for t in runner.loop.trainings]
    assert cutoffs == [BASE + 599, BASE + 1199, BASE + 1799]
    assert all(type(c) is int for c in cutoffs)
    # the catalog keeps the same integer (a report read back places the training with it)
    assert Catalog(store).get("ns-0000").metrics["cutoff_ts"] == BASE + 599
    assert [n.rows for n in runner.next_slice] == [600, 600, 200]


def test_a_cutoff_just_below_a_slice_edge_stays_in_the_slice_before() -> None:
    edge = float(BASE + 1000)  # a slice start: it holds the times >= its value
    starts = np.array([float(BASE), edge])
    below, at = int(edge) - 1, int(edge)  # float(below) == edge: rounded, it would land after the edge
    assert float(below) == edge
    assert cutoff_slice(starts, below) == 0
    assert cutoff_slice(starts, at) == 1
    assert cutoff_slice(starts, float(BASE) - 1e9) == -1  # before the first slice: serves from it on
    assert cutoff_slice(starts, edge) == 1 and cutoff_slice(starts, float("nan")) == 0
