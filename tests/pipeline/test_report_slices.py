"""A report made from a store compares pipelines slice by slice: pipelines evaluated on different
time slices are not drawn on one slice axis (one pipeline's points under another's labels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.app.cli import main
from modyn_store.app.pipeline.config import parse_pipeline
from modyn_store.app.pipeline.evaluate import evaluate_pipeline
from modyn_store.app.pipeline.online import OnlineRunner


def _append(store: Store, i: int) -> None:
    x = np.random.default_rng(i).standard_normal((30, 2)).astype(np.float32)
    store.append(pa.table({"ts": np.arange(30 * i, 30 * i + 30), "label": (x[:, 0] > 0).astype(np.int64),
                           "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))


def test_report_of_pipelines_evaluated_on_different_slices_names_the_choice(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    for i in range(4):
        _append(store, i)
    for name, n in (("two", 2), ("four", 4)):
        cfg = parse_pipeline({"name": name, "source": {"dataset": "elec2"},
                              "model": {"name": "logreg", "params": {"n_classes": 2}},
                              "trigger": {"name": "data_amount", "every": 40}, "evaluation": {"slices": n}})
        run = OnlineRunner(cfg, store, poll=0.01)
        run.run(idle_timeout=0.05)
        assert run.loop is not None and run.loop.trainings
        evaluate_pipeline(store, cfg, run.loop.trainings)
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "s"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--pipeline" in err and "slices" in err
    assert not out.exists()
    assert main(["report", str(tmp_path / "s"), "--out", str(out), "--pipeline", "two"]) == 0
    assert (out / "report.md").exists()
