"""The heat maps of one report share their colour scale, so a colour is one metric value in all.

On the demo's report each heat map spanned its own matrix: yellow was 0.78 for the pipeline
that never retrains and 0.88 for the one that retrains, and the pictures could not be compared
side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modyn_store.app.report.build import render_report
from modyn_store.app.report.records import PipelineResult, TriggerRecord


def _result(name: str, values: tuple[float, float, float]) -> PipelineResult:
    return PipelineResult(name, "time", "all_data", "retrain", (TriggerRecord(0, 1, 100, 0.1, slice_index=0),),
                          (values,), ("s0", "s1", "s2"))


def test_every_heat_map_spans_the_values_of_all_pipelines(plotted_figures: list[Any], tmp_path: Path) -> None:
    render_report([_result("low", (0.59, 0.62, 0.78)), _result("high", (0.40, 0.85, 0.88))], tmp_path)
    maps = [f for f in plotted_figures if f.axes and f.axes[0].get_ylabel() == "model (trigger index)"]
    assert len(maps) == 2
    limits = [m.axes[0].images[0].get_clim() for m in maps]
    assert limits == [(0.40, 0.88), (0.40, 0.88)]


def test_a_single_heat_map_spans_its_own_values(plotted_figures: list[Any], tmp_path: Path) -> None:
    render_report([_result("only", (0.59, 0.62, 0.78))], tmp_path)
    maps = [f for f in plotted_figures if f.axes and f.axes[0].get_ylabel() == "model (trigger index)"]
    assert [m.axes[0].images[0].get_clim() for m in maps] == [(0.59, 0.78)]
