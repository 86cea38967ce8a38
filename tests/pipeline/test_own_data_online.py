"""Online mode on your own data: follow a store source, class count from the store, evaluation as it
goes, the report on stop; bench grids over your own files; the trainer's label check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modyn_store import Store
from modyn_store.app.cli.main import main
from modyn_store.app.datasets.columns import ColumnMap
from modyn_store.app.datasets.user import append_stream
from modyn_store.app.pipeline import parse_pipeline
from modyn_store.app.pipeline.online import OnlineRunner
from modyn_store.core.errors import InvalidArgumentError


def _chunk(i: int, n: int = 400) -> pa.Table:
    rng = np.random.default_rng(i)
    x = rng.standard_normal((n, 2))
    y = np.where(x[:, 0] > 0, "up", np.where(x[:, 1] > 0, "flat", "down"))
    return pa.table({"t": np.arange(i * n, (i + 1) * n), "y": y, "a": x[:, 0], "b": x[:, 1]})


def _live(path: Path, chunks: int = 5) -> Store:
    store = Store.open(str(path), create=True)
    for i in range(chunks):
        append_stream(store, _chunk(i), ColumnMap(ts="t", label="y"))
    return store


def test_online_follows_a_store_source_and_evaluates_as_it_goes(tmp_path: Path) -> None:
    store = _live(tmp_path / "live")
    cfg = parse_pipeline({"name": "live", "source": {"store": str(tmp_path / "live")}, "model": {"name": "logreg"},
                          "trigger": {"name": "data_amount", "every": 600}, "training": {"lr": 0.05, "epochs": 3}})
    runner = OnlineRunner(cfg, store, poll=0.01)
    assert runner.run(idle_timeout=0.05) == 3
    assert runner.loop is not None and runner.loop.model_params["n_classes"] == 3  # from the store's label map
    ns = runner.next_slice
    assert [n.training_id for n in ns] == ["live-0000", "live-0001", "live-0002"]
    assert [n.replaced_by for n in ns] == ["live-0001", "live-0002", None]
    assert [n.rows for n in ns] == [600, 600, 200]  # every row after the first model's cutoff, once
    assert all(0.5 < n.value <= 1.0 for n in ns)  # separable classes: well above chance (1/3)


def test_online_cli_writes_the_report_on_stop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _live(tmp_path / "live")
    (tmp_path / "p.yaml").write_text("name: cli\nsource: {store: live}\nmodel: {name: logreg}\n"
                                     "trigger: {name: data_amount, every: 800}\n")
    out = tmp_path / "rep"
    assert main(["run", str(tmp_path / "p.yaml"), "--online", "--idle-timeout", "0.05", "--poll", "0.01",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "cli-0000 while it served: accuracy" in text
    md = (out / "report.md").read_text()
    assert "Next-slice evaluation" in md and "| cli-0001 | (stop) |" in md
    assert "cd " in md and "modyn-store run" in md  # reruns as written, from its folder


def test_bench_grid_over_your_own_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pq.write_table(pa.concat_tables([_chunk(i) for i in range(4)]), tmp_path / "s.parquet")
    (tmp_path / "grid.yaml").write_text("""title: own grid
base:
  source: {path: s.parquet, ts: t, label: y, chunk: "n:400"}
  model: {name: logreg}
  evaluation: {slices: 2}
pipelines:
  - {name: every-400, trigger: {name: data_amount, every: 400}}
  - {name: every-800, trigger: {name: data_amount, every: 800}}
""")
    assert main(["bench", str(tmp_path / "grid.yaml"), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    import os
    import shlex

    assert "every-400" in md and "every-800" in md
    assert f"cd {shlex.quote(os.getcwd())} && modyn-store bench {tmp_path / 'grid.yaml'}" in md  # reruns as written


def test_training_refuses_string_labels_with_a_readable_error(tmp_path: Path) -> None:
    import training
    from modyn_store.core.trainset import TrainSet
    from training.trainer import TrainConfig

    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(4), "label": ["a", "b", "a", "b"],
                           "features": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(8, np.float32)), 2)}))
    cfg = TrainConfig(model="logreg", model_params={"in_features": 2, "n_classes": 2}, inputs={"features": "features"})
    with pytest.raises(InvalidArgumentError, match="integer class codes") as info:
        training.train(store, TrainSet.uniform(store.as_of().keys(), version=1), cfg)
    assert info.value.name == "config.label"


def test_online_without_a_source_section_follows_the_given_store(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _live(tmp_path / "live", chunks=3)
    (tmp_path / "p.yaml").write_text("name: bare\nmodel: {name: logreg}\ntrigger: {name: data_amount, every: 500}\n")
    assert main(["run", str(tmp_path / "p.yaml"), "--online", "--idle-timeout", "0.05", "--poll", "0.01"]) == 2
    assert "--store" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "p.yaml"), "--online", "--store", str(tmp_path / "live"),
                 "--idle-timeout", "0.05", "--poll", "0.01"]) == 0
    assert "2 new trainings" in capsys.readouterr().out


def test_checks_made_on_the_data_still_name_the_yaml_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text("name: syn\nsource:\n  dataset: synthetic_clicks\n"
                                     "  params: {n_rows: 500, n_days: 2}\n  encode: clicks\nmodel: {name: logreg}\n"
                                     "trigger:\n  name: time\n  every: 1500s\n")
    assert main(["run", str(tmp_path / "p.yaml"), "--store", str(tmp_path / "st")]) == 2
    err = capsys.readouterr().err
    assert "p.yaml:9: trigger.every" in err and "number" in err
    assert not (tmp_path / "st").exists()  # nothing written


def test_reports_name_the_labels_behind_the_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pq.write_table(pa.concat_tables([_chunk(i) for i in range(2)]), tmp_path / "s.parquet")
    (tmp_path / "p.yaml").write_text("name: lab\nsource: {path: s.parquet, ts: t, label: y, chunk: 'n:400'}\n"
                                     "model: {name: logreg}\ntrigger: {name: data_amount, every: 400}\n"
                                     "evaluation: {slices: 2}\n")
    assert main(["run", str(tmp_path / "p.yaml"), "--store", str(tmp_path / "st"), "--out", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "3 classes" in md and "0 = 'down', 1 = 'flat', 2 = 'up'" in md
    capsys.readouterr()
    assert main(["report", str(tmp_path / "st")]) == 0
    assert "0 = 'down'" in capsys.readouterr().out


def test_online_on_a_file_source_without_a_store_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pq.write_table(_chunk(0), tmp_path / "s.parquet")
    (tmp_path / "p.yaml").write_text("name: f\nsource: {path: s.parquet, ts: t, label: y}\nmodel: {name: logreg}\n"
                                     "trigger: {name: data_amount, every: 100}\n")
    assert main(["run", str(tmp_path / "p.yaml"), "--online", "--idle-timeout", "0.01"]) == 2
    assert "--store" in capsys.readouterr().err
    assert not Path("modyn-store-runs/f").exists()


def test_a_retrain_without_new_event_times_evaluates_nothing() -> None:
    """A retrain fired by a delete keeps the cutoff: the window after the served model is empty."""
    from types import SimpleNamespace

    prev, same = SimpleNamespace(training_id="t1", cutoff_ts=5.0), SimpleNamespace(training_id="t2", cutoff_ts=5.0)
    runner = SimpleNamespace(_previous=prev, next_slice=[])
    OnlineRunner._next_slice(runner, same)  # type: ignore[arg-type]
    assert runner.next_slice == [] and runner._previous is same


def test_the_labels_section_writes_label_values_as_text(tmp_path: Path) -> None:
    """Label values are the data's own text: markup in one is shown, not rendered."""
    from modyn_store.app.cli.pipeline_cmds import _labels_section

    (tmp_path / "d.csv").write_text("t,x,y\n1,0.5,<img src=x>\n2,0.7,a|b\n")
    assert main(["append", str(tmp_path / "st"), str(tmp_path / "d.csv"), "--ts", "t", "--label", "y",
                 "--features", "x"]) == 0
    section = _labels_section(Store.open(str(tmp_path / "st")))
    assert "&lt;img src=x&gt;" in section and "<img" not in section and "a\\|b" in section
