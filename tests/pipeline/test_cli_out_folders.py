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


def _refused_grid(tmp_path: Path) -> Path:
    """A grid whose chunk rule does not fit its event times (integer milliseconds under ``1d``):
    refused inside the run, after ``--out`` and ``--store`` were made."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    ms = np.arange(0, 3 * 86_400_000, 3_600_000, dtype=np.int64) + 1_704_067_200_000
    pq.write_table(pa.table({"t": ms, "y": np.arange(ms.size) % 2, "u": np.arange(ms.size, dtype=np.float64)}),
                   tmp_path / "ms.parquet")
    grid = tmp_path / "g.yaml"
    grid.write_text("title: ms\nbase:\n  source: {path: ms.parquet, ts: t, label: y, chunk: 1d}\n"
                    "  model: {name: logreg}\npipelines:\n  - {name: a, trigger: {name: data_amount, every: 24}}\n")
    return grid


def test_a_failed_bench_removes_the_new_parent_that_out_and_store_share(tmp_path: Path) -> None:
    """``--out`` made ``new/`` and ``new/out``, ``--store`` then made ``new/stores``: the failed run
    removed ``new/out``, then found ``new/`` still holding ``new/stores`` and left it behind."""
    grid = _refused_grid(tmp_path)
    new = tmp_path / "new"
    assert main(["bench", str(grid), "--out", str(new / "out"), "--store", str(new / "stores")]) == 2
    assert not new.exists()


def test_a_failed_bench_keeps_the_folders_that_existed_before(tmp_path: Path) -> None:
    grid = _refused_grid(tmp_path)
    old = tmp_path / "old"
    old.mkdir()
    kept = old / "empty"
    kept.mkdir()
    assert main(["bench", str(grid), "--out", str(kept / "a" / "out"), "--store", str(old / "b" / "stores")]) == 2
    assert sorted(p.name for p in old.iterdir()) == ["empty"] and not any(kept.iterdir())


def test_a_refused_store_removes_the_parents_it_made_before_the_refusal(tmp_path: Path) -> None:
    """Creating ``new/<too long a name>/s`` makes ``new/`` and then fails: the refusal left ``new/``."""
    out, new = tmp_path / "out", tmp_path / "new"
    assert main(["bench", "elec2", "--out", str(out), "--store", str(new / ("x" * 300) / "s")]) == 2
    assert not out.exists() and not new.exists()


def test_a_store_name_too_long_is_refused_naming_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["bench", "elec2", "--out", str(out), "--store", str(tmp_path / ("x" * 300) / "s")]) == 2
    assert "invalid --store=" in capsys.readouterr().err
    assert not out.exists()
