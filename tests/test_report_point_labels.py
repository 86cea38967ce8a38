"""The names in the cost-vs-metric plot are not drawn under a pipeline's marker.

The demo's own figures: ``finetune-new`` (86,016 samples, 0.7499) lies a few points left of and
below ``drift-finetune`` (90,000, 0.7508); its name, drawn to its upper right, ran under the
other pipeline's marker and read "inetune-new"."""

from __future__ import annotations

from typing import Any

import numpy as np

import modyn_store.app.report.plots as plots
from modyn_store.app.report.records import SummaryRow


def _row(name: str, cost: float, metric: float, pareto: bool) -> SummaryRow:
    return SummaryRow(name, "t", "s", "u", 5, int(cost), 1.0, metric, metric, pareto, cost=cost)


def test_no_name_lies_under_a_marker(plotted_figures: list[Any]) -> None:
    rows = [_row("no-retrain", 5376, 0.6533, True), _row("finetune-new", 86016, 0.7499, True),
            _row("retrain-all", 731136, 0.7388, False), _row("drift-finetune", 90000, 0.7508, True)]
    plots.plot_cost_vs_metric(rows)
    fig = plotted_figures[-1]
    fig.canvas.draw()
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    markers = []  # (x, y, radius) in display pixels of every drawn point
    for coll in ax.collections:
        sizes = coll.get_sizes()
        if not len(sizes):
            continue
        centres = coll.get_offset_transform().transform(coll.get_offsets())
        radius = np.sqrt(sizes) / 2 * fig.dpi / 72.0  # marker area is in points^2
        markers += [(x, y, float(radius[i % len(radius)])) for i, (x, y) in enumerate(centres)]
    assert len(markers) == len(rows)
    names = [t for t in ax.texts if t.get_text() in {r.name for r in rows}]
    assert len(names) == len(rows)
    for text in names:
        box = text.get_window_extent(renderer)
        for x, y, r in markers:
            nx, ny = min(max(x, box.x0), box.x1), min(max(y, box.y0), box.y1)  # nearest point of the box
            assert (nx - x) ** 2 + (ny - y) ** 2 > r * r, f"{text.get_text()!r} is drawn under a marker"
