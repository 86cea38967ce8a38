"""The training and evaluation settings of a pipeline reach what ``run --online`` does: the
metric of the next-slice evaluations is ``evaluation.metric`` and torch runs with
``training.threads`` threads while it trains; ``run --online`` of a file source follows the
store given with ``--store`` and is refused without one, while a replay of a store source
refuses a ``--store`` other than its source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.app.datasets.columns import ColumnMap
from modyn_store.app.datasets.user import append_stream
from modyn_store.app.pipeline import parse_pipeline
from modyn_store.app.pipeline.online import OnlineRunner


def _store(path: Path) -> Store:
    store = Store.open(str(path), create=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        x = rng.standard_normal((100, 2))
        append_stream(store, pa.table({"t": np.arange(i * 100, (i + 1) * 100), "y": (x[:, 0] > 0).astype(np.int64),
                                       "a": x[:, 0], "b": x[:, 1]}), ColumnMap(ts="t", label="y"))
    return store


def _runner(path: Path, name: str = "o", **extra: Any) -> OnlineRunner:
    cfg = parse_pipeline({"name": name, "source": {"store": str(path)}, "model": {"name": "logreg"},
                          "trigger": {"name": "data_amount", "every": 100}, **extra})
    return OnlineRunner(cfg, Store.open(str(path)), poll=0.01)


def test_next_slice_uses_the_evaluation_metric(tmp_path: Path) -> None:
    _store(tmp_path / "s")
    runner = _runner(tmp_path / "s", evaluation={"metric": "loss"})
    runner.run(idle_timeout=0.05)
    assert runner.next_slice and {n.metric for n in runner.next_slice} == {"loss"}
    acc = _runner(tmp_path / "s", "acc")
    acc.run(idle_timeout=0.05)
    assert {n.metric for n in acc.next_slice} == {"accuracy"}
    assert [n.value for n in runner.next_slice] != [n.value for n in acc.next_slice]


def test_online_trainings_run_with_the_thread_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import training

    _store(tmp_path / "s")
    seen: list[int] = []
    real = training.train

    def train(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train", train)
    runner = _runner(tmp_path / "s", training={"threads": 2})
    runner.run(idle_timeout=0.05)
    assert seen and set(seen) == {2}


def test_run_online_with_a_file_source_follows_the_store_given(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow.csv as pcsv

    from modyn_store.app.cli.main import main

    _store(tmp_path / "s")
    pcsv.write_csv(pa.table({"t": [0, 1], "y": [0, 1], "a": [0.5, 1.5], "b": [1.0, 2.0]}), str(tmp_path / "d.csv"))
    (tmp_path / "p.yaml").write_text("name: f\nsource: {path: d.csv, ts: t, label: y}\nmodel: {name: logreg}\n"
                                     "trigger: {name: data_amount, every: 100}\n")
    assert main(["run", str(tmp_path / "p.yaml"), "--online", "--idle-timeout", "0", "--poll", "0.01"]) == 2
    assert "--store" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "p.yaml"), "--online", "--store", str(tmp_path / "s"),
                 "--idle-timeout", "0", "--poll", "0.01"]) == 0
    assert "stopped at version" in capsys.readouterr().out


def test_replay_of_a_store_source_refuses_another_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modyn_store.app.cli.main import main

    _store(tmp_path / "s")
    (tmp_path / "p.yaml").write_text(f"name: r\nsource: {{store: {tmp_path / 's'}}}\nmodel: {{name: logreg}}\n"
                                     "trigger: {name: data_amount, every: 100}\n")
    assert main(["run", str(tmp_path / "p.yaml"), "--store", str(tmp_path / "other")]) == 2
    assert "replayed in place" in capsys.readouterr().err
    assert Store.open(str(tmp_path / "s")).version == 3  # nothing trained into the source store
