"""Grids: product expansion, a tiny end-to-end bench with its report, and the demo."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_helpers import tiny

from modyn_store.app.pipeline import parse_grid, run_grid
from modyn_store.app.pipeline.demo_grid import demo_grid, run_scenario_demo


def _tiny_grid() -> dict:
    base = tiny()
    del base["name"], base["trigger"], base["selection"], base["update"]
    return {
        "title": "tiny",
        "base": base,
        "pipelines": [{"name": "once", "trigger": {"name": "time", "every": "14d"}, "selection": {"name": "all_data"},
                       "update": {"name": "retrain"}, "limits": {"max_trainings": 1}}],
        "product": {"trigger": {"t14": {"name": "time", "every": "14d"}},
                    "selection": {"new": {"name": "new_data"}, "all": {"name": "all_data"}},
                    "update": {"ft": {"name": "finetune"}}},
    }


def test_tiny_grid_end_to_end(tmp_path: Path) -> None:
    grid = parse_grid(_tiny_grid())
    assert [p.name for p in grid.pipelines] == ["once", "t14-new-ft", "t14-all-ft"]
    res = run_grid(grid, tmp_path / "report", store_dir=tmp_path / "stores", command="modyn-store bench tiny.yaml")
    assert [len(r.trainings) for r in res.runs][0] == 1
    assert len(res.runs[1].trainings) == len(res.runs[2].trainings) > 1
    new, full = res.runs[1], res.runs[2]
    # new data only trains on fewer samples than all data at every trigger after the first
    assert sum(t.samples for t in new.trainings) < sum(t.samples for t in full.trainings)
    assert len({r.store_uri for r in res.runs}) == 1  # one ingested store, replayed by all
    report = tmp_path / "report"
    md = (report / "report.md").read_text()
    assert "modyn-store bench tiny.yaml" in md and "t14-all-ft" in md
    # where the wall time went: every pipeline's parts add up to its wall time (bookkeeping is
    # the rest, its trainings' and the versions replayed after them), and evaluation (timed
    # around the slices) is part of it
    table = md.split("## Where the wall time went", 1)[1]
    for r in res.runs:
        row = next(line for line in table.splitlines() if line.startswith(f"| pipeline {r.config.name} |"))
        wall, fit, score, ev, book = (float(c) for c in row.split("|")[2:7])
        assert ev > 0 and wall >= fit + score + ev + book - 0.02
        assert ev == pytest.approx(r.evaluation_seconds, abs=0.006)
        assert book >= sum(t.bookkeeping_seconds for t in r.trainings) - 0.02
        assert fit + score + ev + book == pytest.approx(wall, abs=0.02)
    whole = next(line for line in table.splitlines() if line.startswith("| whole run |"))
    assert float(whole.split("|")[2]) >= sum(r.seconds for r in res.runs)
    pngs = sorted(report.glob("*.png"))
    assert {"metric_over_time.png", "cost_vs_metric.png"} <= {p.name for p in pngs}
    assert len([p for p in pngs if p.name.startswith("heatmap_")]) == 3
    assert all(p.stat().st_size < 200_000 for p in pngs)


def test_demo_grid_covers_the_readme_story() -> None:
    names = [p.name for p in demo_grid().pipelines]
    assert names == ["no-retrain", "finetune-new", "retrain-all", "drift-finetune"]
    assert demo_grid().pipelines[0].limits.max_trainings == 1


@pytest.mark.slow
def test_scenario_demo_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_scenario_demo(tmp_path / "store", tmp_path / "out", quick=True)
    out = capsys.readouterr().out
    assert "finetune-new" in out and "metric_over_time.png" in out
    assert (tmp_path / "out" / "cost_vs_metric.png").exists()
    by = {r.config.name: r for r in res.runs}
    assert len(by["no-retrain"].trainings) == 1 < len(by["finetune-new"].trainings)


def test_store_folder_is_reused_only_when_it_holds_stores(tmp_path: Path) -> None:
    from modyn_store import Store
    from modyn_store.app.pipeline import PipelineConfigError
    from modyn_store.app.pipeline.bench import _fresh_store_dir

    root = tmp_path / "stores"
    Store.open(str(root / "shared"), create=True)
    _fresh_store_dir(root)
    assert root.exists() and not any(root.iterdir())
    (root / "notes.txt").write_text("mine")
    with pytest.raises(PipelineConfigError) as info:
        _fresh_store_dir(root)
    assert info.value.key == "--store"
    assert (root / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(("override", "named"), [({"slices": 3}, "evaluation.slices=3"),
                                                 ({"metric": "loss"}, "evaluation.metric='loss'")])
def test_a_grid_compares_pipelines_on_the_same_slices_and_metric(override: dict[str, object], named: str) -> None:
    # the report plots each curve at the longest pipeline's slice labels and ranks the means on a
    # Pareto front: pipelines evaluated on other slices or by another metric cannot be compared
    from modyn_store.app.pipeline.errors import PipelineConfigError

    base = {"source": {"dataset": "elec2", "chunk": "14d", "limit": 4000}, "model": {"name": "logreg"},
            "evaluation": {"slices": 6}}
    pipelines = [{"name": "six", "trigger": {"name": "time", "every": "28d"}},
                 {"name": "other", "trigger": {"name": "time", "every": "28d"}, "evaluation": override}]
    with pytest.raises(PipelineConfigError, match=rf"same slices by the same metric.*'other' has {named}"):
        parse_grid({"base": base, "pipelines": pipelines})
    assert len(parse_grid({"base": base, "pipelines": pipelines[:1] + [{**pipelines[1], "evaluation": {}}]})
               .pipelines) == 2


def test_an_empty_product_axis_is_refused() -> None:
    """An axis given with no label was dropped: the grid ran the base's policy unlabelled."""
    from modyn_store.app.pipeline import PipelineConfigError

    grid = _tiny_grid()
    grid["base"]["selection"] = {"name": "all_data"}
    grid["product"]["selection"] = {}
    with pytest.raises(PipelineConfigError, match="empty axis") as err:
        parse_grid(grid)
    assert err.value.key == "product.selection"
