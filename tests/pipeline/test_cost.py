"""Cost you can trust: deterministic units equal whatever the position in a grid; wall after warm-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import tiny

from modyn_store.app.pipeline import parse_grid, run_grid


def _identical_grid(n: int, **over: Any) -> dict[str, Any]:
    base = tiny(**over)
    del base["name"]
    return {"title": "identical", "base": base, "pipelines": [{"name": f"p{i}"} for i in range(n)]}


def _costs(run: Any) -> list[tuple[int, int, int, int]]:
    return [(t.n_keys, t.samples, t.forward_passes, t.rows_scanned) for t in run.trainings]


def test_identical_pipelines_report_identical_deterministic_cost(tmp_path: Path) -> None:
    grid = parse_grid(_identical_grid(2, selection={"name": "loss", "ratio": 0.5}))
    res = run_grid(grid, tmp_path / "report", store_dir=tmp_path / "stores")
    first = _costs(res.runs[0])
    assert len(first) > 1
    assert all(fp > 0 and rs > n for n, _, fp, rs in first)  # scoring and scans are counted
    for run in res.runs[1:]:
        assert _costs(run) == first
    for run in res.runs:
        for t in run.trainings:
            # wall covers trigger, selection (with scoring), loading and training
            assert t.wall_seconds >= t.train_seconds + t.select_seconds + t.trigger_seconds - 1e-9
            assert t.select_seconds >= t.score_seconds > 0
            assert t.bookkeeping_seconds == pytest.approx(t.wall_seconds - t.train_seconds - t.score_seconds)
    md = (tmp_path / "report" / "report.md").read_text()
    assert "forward passes" in md and "rows scanned" in md and "bookkeeping %" in md


def test_cost_survives_the_catalog(tmp_path: Path) -> None:
    from modyn_store import Store
    from modyn_store.app.pipeline.history import pipeline_results

    grid = parse_grid(_identical_grid(1, selection={"name": "loss", "ratio": 0.5}))
    res = run_grid(grid, tmp_path / "report", store_dir=tmp_path / "stores")
    (back,) = pipeline_results(Store.open(res.runs[0].store_uri))
    live = res.runs[0].result
    assert [(t.n_samples, t.forward_passes, t.rows_scanned) for t in back.triggers] == \
           [(t.n_samples, t.forward_passes, t.rows_scanned) for t in live.triggers]
    assert back.total_passes == live.total_passes > live.total_samples


def test_warm_up_runs_once_per_configuration() -> None:
    from modyn_store.app.pipeline.config import parse_pipeline
    from modyn_store.app.pipeline.source import load_source, model_params
    from modyn_store.app.pipeline.warmup import warm_up

    cfg = parse_pipeline(tiny("warm", selection={"name": "entropy", "ratio": 0.3}))
    t = load_source(cfg.source)
    assert warm_up(cfg, t, model_params(cfg, t)) is True
    assert warm_up(cfg, t, model_params(cfg, t)) is False
    assert warm_up(cfg, t, model_params(cfg, t), force=True) is True
