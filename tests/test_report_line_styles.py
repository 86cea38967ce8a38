"""Every pipeline's line in the metric-over-time plot looks different from the others, also when
there are more pipelines than colours and the curves are too long for markers."""

from __future__ import annotations

from typing import Any


import modyn_store.app.report.plots as plots
from modyn_store.app.report.build import current_model_curve
from modyn_store.app.report.records import PipelineResult, TriggerRecord


def test_lines_of_many_pipelines_on_long_curves_are_told_apart(plotted_figures: list[Any]) -> None:
    figs = plotted_figures
    n = 31  # no markers on curves this long
    results = [PipelineResult(f"p{i}", "t", "s", "u", [TriggerRecord(0, 1, 10, 0.1, slice_index=0)],
                              [[0.5 + i / 100] * n], [f"s{k}" for k in range(n)]) for i in range(12)]
    plots.plot_metric_over_time(results, [current_model_curve(r) for r in results])
    lines = figs[-1].axes[0].get_lines()
    assert [line.get_label() for line in lines] == [r.name for r in results]
    looks = [(tuple(map(float, _rgba(line))), line.get_marker(), line.get_linestyle()) for line in lines]
    assert len(set(looks)) == len(looks)


def _rgba(line: Any) -> tuple[float, ...]:
    from matplotlib.colors import to_rgba

    return to_rgba(line.get_color())
