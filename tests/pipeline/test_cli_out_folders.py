"""A refused command line leaves no folder behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from modyn_store.app.cli.main import main

PIPELINE = """name: p1
source: {dataset: elec2, limit: 500, chunk: "14d"}
model: {name: logreg}
trigger: {name: time, every: "14d"}
evaluation: {slices: 2}
"""


def test_bench_with_a_bad_store_creates_no_out_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    out = tmp_path / "out" / "deeper"
    assert main(["bench", "elec2", "--out", str(out), "--store", str(blocker)]) == 2
    assert not (tmp_path / "out").exists()


def test_bench_keeps_an_existing_out_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["bench", "elec2", "--out", str(out), "--store", str(blocker / "s")]) == 2
    assert (out / "keep.txt").read_text() == "mine"


def test_run_with_a_bad_store_creates_no_out_folder(tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text(PIPELINE)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    out = tmp_path / "report"
    assert main(["run", str(spec), "--out", str(out), "--store", str(blocker)]) == 2
    assert not out.exists()


def test_report_of_pipelines_with_different_metrics_names_the_choice(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from modyn_store.app.pipeline.config import parse_pipeline
    from modyn_store.app.pipeline.runner import run_pipeline

    base = {"model": {"name": "logreg"}, "trigger": {"name": "time", "every": "14d"}, "training": {"epochs": 1}}
    store = tmp_path / "s"
    run_pipeline(parse_pipeline({**base, "name": "acc", "source": {"dataset": "elec2", "limit": 2000, "chunk": "14d"},
                                 "evaluation": {"slices": 2}}), store)
    run_pipeline(parse_pipeline({**base, "name": "los", "source": {"store": str(store)},
                                 "evaluation": {"slices": 2, "metric": "loss"}}), None)
    out = tmp_path / "report"
    assert main(["report", str(store), "--out", str(out)]) == 2
    assert "--pipeline" in capsys.readouterr().err
    assert not out.exists()
    assert main(["report", str(store), "--out", str(out), "--pipeline", "los"]) == 0
    assert (out / "report.md").exists()
