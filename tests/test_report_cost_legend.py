"""The legend of the cost-vs-metric plot does not hide a pipeline's point.

The costliest pipeline with the lowest metric (a common dominated one) lies in the lower right
corner of the plot."""

from __future__ import annotations

from typing import Any

import numpy as np

import modyn_store.app.report.plots as plots
from modyn_store.app.report.records import SummaryRow


def _row(name: str, cost: float, metric: float, pareto: bool) -> SummaryRow:
    return SummaryRow(name, "t", "s", "u", 5, int(cost), 1.0, metric, metric, pareto, cost=cost)


def test_the_legend_leaves_every_point_visible(plotted_figures: list[Any]) -> None:
    figs = plotted_figures
    rows = [_row("cheap-good", 40_000, 0.63, True), _row("mid", 169_756, 0.627, False),
            _row("costly-poor", 318_122, 0.398, False)]
    plots.plot_cost_vs_metric(rows)
    fig = figs[-1]
    fig.canvas.draw()
    ax = fig.axes[0]
    box = ax.get_legend().get_window_extent()
    points = np.concatenate([c.get_offset_transform().transform(c.get_offsets()) for c in ax.collections])
    assert len(points) == len(rows)
    hidden = [tuple(p) for p in points if box.contains(*p)]
    assert hidden == []
