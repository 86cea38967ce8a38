"""Each flag of run, bench, report and demo changes what the command runs or writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modyn_store import Store
from modyn_store.app.cli.main import main
from modyn_store.app.datasets.columns import ColumnMap
from modyn_store.app.datasets.user import append_stream
from modyn_store.core.store import MARKER
from modyn_store.core.trainings import Catalog

GRID = """title: two
base:
  source: {dataset: elec2, limit: 1200, chunk: "14d"}
  model: {name: logreg}
  selection: {name: new_data}
  update: {name: finetune}
  evaluation: {slices: 2}
pipelines:
  - {name: first, trigger: {name: time, every: "14d"}}
  - {name: second, trigger: {name: data_amount, every: 500}}
"""


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODYN_STORE_DATA", raising=False)


def _ids(store: str | Path) -> list[str]:
    return sorted(r.training_id for r in Catalog(Store.open(str(store))).list())


def _stores_under(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob(MARKER))


def test_run_pipeline_picks_one_pipeline_of_a_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "grid.yaml").write_text(GRID)
    st = tmp_path / "st"
    assert main(["run", str(tmp_path / "grid.yaml"), "--pipeline", "second", "--store", str(st)]) == 0
    ids = _ids(st)
    assert ids and all(i.startswith("second-") for i in ids)
    assert main(["run", str(tmp_path / "grid.yaml"), "--store", str(tmp_path / "x")]) == 2  # which one?
    assert "--pipeline" in capsys.readouterr().err


def test_run_data_is_the_folder_of_relative_source_paths(tmp_path: Path) -> None:
    from modyn_store.app.datasets.builtin import bundled_elec2

    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pq.read_table(bundled_elec2()).slice(0, 700), data / "few.parquet")
    (tmp_path / "p.yaml").write_text("name: d\nsource: {dataset: elec2, path: few.parquet, chunk: 14d}\n"
                                     "model: {name: logreg}\ntrigger: {name: data_amount, every: 100000}\n")
    st = tmp_path / "st"
    assert main(["run", str(tmp_path / "p.yaml"), "--store", str(st), "--data", str(data)]) == 0
    assert Store.open(str(st)).as_of().count() == 700
    assert main(["run", str(tmp_path / "p.yaml"), "--store", str(tmp_path / "st2")]) == 2  # no such file here
    (tmp_path / "grid.yaml").write_text("title: g\nbase:\n  source: {dataset: elec2, path: few.parquet, chunk: 14d}\n"
                                        "  model: {name: logreg}\n  evaluation: {slices: 2}\npipelines:\n"
                                        "  - {name: g1, trigger: {name: data_amount, every: 300}}\n")
    assert main(["bench", str(tmp_path / "grid.yaml"), "--out", str(tmp_path / "rep"), "--store", str(tmp_path / "bs"),
                 "--data", str(data)]) == 0
    (bench_store,) = _stores_under(tmp_path / "bs")
    assert Store.open(str(bench_store)).as_of().count() == 700


def _live(path: Path, chunks: int = 4) -> Store:
    store = Store.open(str(path), create=True)
    rng = np.random.default_rng(0)
    for i in range(chunks):
        x = rng.standard_normal((300, 2))
        append_stream(store, pa.table({"t": np.arange(i * 300, (i + 1) * 300), "y": (x[:, 0] > 0).astype(int),
                                       "a": x[:, 0], "b": x[:, 1]}), ColumnMap(ts="t", label="y"))
    return store


def test_run_online_stop_after_poll_and_idle_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from modyn_store.app.pipeline import online

    seen: list[dict[str, Any]] = []
    real = online.OnlineRunner.run

    def run(self: Any, **kwargs: Any) -> int:
        seen.append({"poll": self.poll, **kwargs})
        return real(self, **kwargs)

    monkeypatch.setattr(online.OnlineRunner, "run", run)
    _live(tmp_path / "live")
    (tmp_path / "p.yaml").write_text("name: live1\nsource: {store: live}\nmodel: {name: logreg}\n"
                                     "trigger: {name: data_amount, every: 250}\n")
    assert main(["run", str(tmp_path / "p.yaml"), "--online", "--stop-after", "2", "--poll", "0.02",
                 "--idle-timeout", "0.3"]) == 0
    assert "stopped at version 2;" in capsys.readouterr().out
    assert _ids(tmp_path / "live") == ["live1-0000", "live1-0001"]  # 600 rows seen: two firings, none from later versions
    assert seen == [{"poll": 0.02, "idle_timeout": 0.3, "stop_after": 2, "on_start": seen[0]["on_start"]}]


def test_bench_list_store_and_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--list"]) == 0
    assert "elec2" in capsys.readouterr().out
    (tmp_path / "grid.yaml").write_text(GRID)
    out, st = tmp_path / "rep", tmp_path / "stores"
    assert main(["bench", str(tmp_path / "grid.yaml"), "--out", str(out), "--store", str(st)]) == 0
    assert (out / "report.md").exists()
    stores = _stores_under(st)
    assert stores and not _stores_under(out)  # the stores went to --store, not <out>/store
    assert {i.split("-")[0] for i in _ids(stores[0])} == {"first", "second"}
    capsys.readouterr()
    assert main(["report", str(stores[0]), "--pipeline", "second"]) == 0
    text = capsys.readouterr().out
    assert "== second:" in text and "first-0000" not in text and "== first:" not in text
    assert main(["report", str(stores[0]), "--pipeline", "first", "--out", str(tmp_path / "r1")]) == 0
    md = (tmp_path / "r1" / "report.md").read_text()
    assert "| first |" in md and "| second |" not in md


def test_demo_store_only_and_where_the_report_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modyn_store.app.pipeline import demo_grid

    calls: list[tuple[Path, Path, bool]] = []
    monkeypatch.setattr(demo_grid, "run_scenario_demo",
                        lambda store_dir, out_dir, *, quick: calls.append((Path(store_dir), Path(out_dir), quick)))
    root = tmp_path / "demo"
    assert main(["demo", "--store", str(root), "--store-only"]) == 0
    assert (root / "walkthrough" / MARKER).exists() and calls == []
    assert main(["demo", "--store", str(root), "--quick", "--out", str(tmp_path / "rep")]) == 0
    assert calls == [(root / "scenario", tmp_path / "rep", True)]
    assert main(["demo", "--store", str(root)]) == 0
    assert calls[-1] == (root / "scenario", root / "report", False)


ONE = """name: only
source: {dataset: elec2, limit: 600, chunk: "14d"}
model: {name: logreg}
trigger: {name: data_amount, every: 300}
evaluation: {slices: 2}
"""


def test_a_pipeline_name_that_is_not_there_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--pipeline NAME`` of a file holding one other pipeline, or of a store without it, is an
    error naming the pipelines there; never silently another pipeline or an empty report."""
    (tmp_path / "one.yaml").write_text(ONE)
    st = tmp_path / "st"
    assert main(["run", str(tmp_path / "one.yaml"), "--pipeline", "other", "--store", str(st)]) == 2
    err = capsys.readouterr().err
    assert "--pipeline" in err and "'only'" in err and not st.exists()
    assert main(["run", str(tmp_path / "one.yaml"), "--pipeline", "only", "--store", str(st)]) == 0
    capsys.readouterr()
    assert main(["report", str(st), "--pipeline", "other", "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "--pipeline" in err and "'only'" in err and not (tmp_path / "rep").exists()


@pytest.mark.parametrize("out", [False, True])
def test_report_on_a_store_without_pipeline_trainings_is_an_error(tmp_path: Path, out: bool,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing to report is said on stderr with exit status 2, as for any refused command; never
    an empty report, or none, with status 0."""
    from modyn_store import TrainSet

    st = tmp_path / "st"
    store = Store.open(str(st), create=True)
    store.append(pa.table({"ts": [1, 2], "x": [1.0, 2.0]}))
    rep = ["--out", str(tmp_path / "rep")] if out else []
    for held in ("it holds no training", "its 1 trainings were not made by a pipeline"):
        before = store.version
        assert main(["report", str(st), *rep]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.startswith(f"error: invalid STORE={str(st)!r}: expected a "
                                                              "store with pipeline trainings to report"), captured.err
        assert held in captured.err and "modyn-store run" in captured.err
        assert not (tmp_path / "rep").exists() and Store.open(str(st)).version == before
        if held == "it holds no training":  # then a training recorded through the API, by no pipeline
            Catalog(store).record_training("manual", TrainSet.uniform(np.array([0, 1]), version=1))


def test_report_out_of_pipelines_without_evaluations_is_an_error(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from modyn_store import TrainSet

    st = tmp_path / "st"
    store = Store.open(str(st), create=True)
    store.append(pa.table({"ts": [1, 2], "x": [1.0, 2.0]}))
    Catalog(store).record_training("p-0000", TrainSet.uniform(np.array([0, 1]), version=1),
                                   metrics={"pipeline": "p", "trigger_index": 0})
    assert main(["report", str(st)]) == 0  # the trainings table
    assert "== p: 1 trainings" in capsys.readouterr().out
    assert main(["report", str(st), "--out", str(tmp_path / "rep")]) == 2
    captured = capsys.readouterr()
    assert "== p: 1 trainings" in captured.out and not (tmp_path / "rep").exists()
    assert captured.err.startswith(f"error: invalid --out={str(tmp_path / 'rep')!r}: expected a folder for the plots "
                                   "and pages of evaluated pipelines; no pipeline of this store has an evaluation "
                                   "recorded, so nothing was written"), captured.err
