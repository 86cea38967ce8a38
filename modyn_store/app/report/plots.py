"""The figures of :mod:`modyn_store.app.report.build`, drawn with matplotlib's object API on the Agg canvas.

Each function returns PNG bytes. matplotlib is imported here only, and no global matplotlib
state (backend, rcParams) is changed.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modyn_store.app.report.records import PipelineResult, SummaryRow

__all__ = ["plot_cost_vs_metric", "plot_heatmap", "plot_metric_over_time"]

_DPI = 110
_DX = 7.0  # a point's name starts this many points right of it, clear of its own marker


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def _text(value: str) -> str:
    """``value`` drawn as written: ``$`` is not mathtext, a leading ``_`` does not hide a legend entry."""
    text = str(value).replace("$", r"\$")
    return "\u200b" + text if text.startswith("_") else text


def _ticks(n: int, max_ticks: int = 24) -> list[int]:
    step = max(1, math.ceil(n / max_ticks))
    return list(range(0, n, step))


def _stacked(fig: Any, ax: Any, points: list[tuple[float, float, str]], *, fontsize: float,
             marker: float = 0.0) -> list[float]:
    """Vertical offsets (points) of the labels of ``points`` (x, y, text), drawn to their upper
    right: a label that would overlap one placed before it (points close together, e.g. two
    pipelines of the same cost and metric), or the marker (of radius ``marker`` points) of
    another point, moves down a line until it does not."""
    if not points:
        return []
    ax.autoscale_view()
    at = ax.transData.transform([(x, y) for x, y, _ in points]) * 72.0 / fig.dpi  # in points
    line, char = fontsize * 1.25, fontsize * 0.6
    placed: list[tuple[float, float, float]] = []  # left, right, bottom of each label placed

    def on_marker(i: int, left: float, right: float, bottom: float) -> bool:
        return marker > 0 and any(
            k != i and left < x + marker and x - marker < right and bottom < y + marker and y - marker < bottom + line
            for k, (x, y) in enumerate(at))  # fmt: skip

    out = [0.0] * len(points)
    for i in sorted(range(len(points)), key=lambda k: -at[k][1]):
        left, right = at[i][0] + _DX, at[i][0] + _DX + char * len(points[i][2])
        dy = 4.0
        while (any(left < r and l < right and abs(at[i][1] + dy - b) < line for l, r, b in placed)
               or on_marker(i, left, right, at[i][1] + dy)):
            dy -= line
        placed.append((left, right, at[i][1] + dy))
        out[i] = dy
    return out


def _title(ax: Any, text: str, width_in: float, fontsize: float = 10) -> None:
    """``text`` as the axes' title, wrapped to about the figure's width."""
    import textwrap

    ax.set_title(textwrap.fill(text, max(20, int(width_in * 72 / (fontsize * 0.6)))), fontsize=fontsize)


def plot_heatmap(result: PipelineResult, limits: tuple[float, float] | None = None) -> bytes:
    """Model x time-slice heat map of ``result.matrix``; the current-model cells are outlined.

    ``limits`` (low, high) are the metric values of the two ends of the colour scale; a report
    passes those of all its pipelines so that a colour means the same value in every heat map.
    Without them the scale spans this matrix's finite values."""
    import numpy as np
    from matplotlib.patches import Rectangle

    data = np.array(result.matrix, dtype=float).reshape(len(result.triggers), len(result.slice_labels))
    n_models, n_slices = data.shape
    width = min(16.0, 3.0 + 0.35 * n_slices)
    fig = _figure(width, min(12.0, 2.2 + 0.3 * n_models))
    ax = fig.add_subplot()
    if n_models == 0 or n_slices == 0:  # a pipeline that never trained: nothing to map
        ax.axis("off")
        ax.text(0.5, 0.5, f"{_text(result.name)}: no model was trained", ha="center", va="center")
        return _png(fig)
    cmap = "viridis" if result.higher_is_better else "viridis_r"
    finite = data[np.isfinite(data)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if limits is not None:
        vmin, vmax = float(limits[0]), float(limits[1])
    im = ax.imshow(np.ma.masked_invalid(data), aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    cbar = fig.colorbar(im, ax=ax, shrink=0.9)
    cbar.set_label(_text(result.metric))
    xt, yt = _ticks(n_slices), _ticks(n_models)
    ax.set_xticks(xt, [_text(result.slice_labels[i]) for i in xt], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(yt, [str(i) for i in yt], fontsize=8)
    ax.set_xlabel("evaluation time slice (labelled by its start)")
    ax.set_ylabel("model (trigger index)")
    _title(ax, f"{_text(result.name)}: {_text(result.metric)} of each model on each slice (white box: model in "
               "service)", width - 1.2)  # the colour bar takes the rest
    for s in range(n_slices):  # outline the model in service on each slice
        served = [t.index for t in result.triggers if t.last_slice < s]
        if served:
            ax.add_patch(Rectangle((s - 0.5, served[-1] - 0.5), 1, 1, fill=False, edgecolor="white", linewidth=1.2))
    if n_models * n_slices <= 150:
        mid = (vmin + vmax) / 2
        for m in range(n_models):
            for s in range(n_slices):
                if np.isfinite(data[m, s]):
                    dark = (data[m, s] < mid) == result.higher_is_better
                    ax.text(s, m, f"{data[m, s]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")  # fmt: skip
    return _png(fig)


def plot_metric_over_time(results: Sequence[PipelineResult], curves: Sequence[Sequence[float]],
                          margins: Sequence[Sequence[float]] | None = None) -> bytes:
    """The current model's metric on each slice, one line per pipeline (with its 95% band when
    ``margins`` holds the half-widths of sampled evaluations)."""
    fig = _figure(10.0, 5.0)
    ax = fig.add_subplot()
    from matplotlib import rcParams

    markers = "osD^v<>pXh*"
    colors = rcParams["axes.prop_cycle"].by_key().get("color") or ["C0"]
    styles = ("-", "--", ":", "-.")
    longest = max(results, key=lambda r: len(r.slice_labels))
    for i, (r, curve) in enumerate(zip(results, curves)):
        marker = markers[i % len(markers)] if len(curve) <= 30 else None  # markers clutter long curves
        # once the colours repeat, the line style tells the pipelines apart (long curves have no markers)
        (line,) = ax.plot(range(len(curve)), curve, marker=marker, markersize=4, linewidth=1.4, label=_text(r.name),
                          color=colors[i % len(colors)], linestyle=styles[(i // len(colors)) % len(styles)])
        band = margins[i] if margins is not None and i < len(margins) else []
        if any(m > 0 for m in band if not math.isnan(m)):
            lo = [c - m for c, m in zip(curve, band)]
            hi = [c + m for c, m in zip(curve, band)]
            ax.fill_between(range(len(curve)), lo, hi, color=line.get_color(), alpha=0.18, linewidth=0)
    n = len(longest.slice_labels)
    xt = _ticks(n)
    ax.set_xticks(xt, [_text(longest.slice_labels[i]) for i in xt], rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("time slice (labelled by its start)")
    ax.set_ylabel(f"{_text(results[0].metric)} of the model in service")
    ax.set_title("Metric over time (each slice scored by the latest model trained before it)", fontsize=10)
    ax.grid(True, alpha=0.3)
    if len(results) > 6:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=8, loc="best")
    return _png(fig)


def plot_cost_vs_metric(rows: Sequence[SummaryRow], *, metric: str = "accuracy",
                        cost_label: str = "samples trained + scoring forward passes") -> bytes:
    """Cost (``SummaryRow.cost``) vs mean metric per pipeline, the Pareto front highlighted and joined."""
    fig = _figure(8.0, 5.5)
    ax = fig.add_subplot()
    costs = [r.cost for r in rows]
    scores = [r.mean_metric for r in rows]
    bars = [r.mean_margin if not math.isnan(r.mean_margin) else 0.0 for r in rows]
    if any(b > 0 for b in bars):  # 95% intervals of sampled evaluations
        ax.errorbar(costs, scores, yerr=bars, fmt="none", ecolor="0.5", elinewidth=0.8, capsize=2, zorder=1)
    ax.scatter([c for c, r in zip(costs, rows) if not r.pareto], [s for s, r in zip(scores, rows) if not r.pareto],
               s=40, color="0.6", label="dominated", zorder=2)  # fmt: skip
    front = sorted((c, s) for c, s, r in zip(costs, scores, rows) if r.pareto)
    if front:
        ax.plot([c for c, _ in front], [s for _, s in front], color="tab:red", linewidth=1.2, zorder=3)
        ax.scatter([c for c, _ in front], [s for _, s in front], s=70, color="tab:red", edgecolor="black",
                   label="Pareto front", zorder=4)  # fmt: skip
    positive = [c for c in costs if c > 0]
    if positive and max(positive) / min(positive) > 100:
        ax.set_xscale("log")
    ax.margins(x=0.12, y=0.08)
    named = [(c, s, _text(r.name)) for c, s, r in zip(costs, scores, rows) if not math.isnan(s)]
    # the Pareto front's markers (s=70, edged) are the larger: no name is drawn under one
    for (c, s, name), dy in zip(named, _stacked(fig, ax, named, fontsize=8, marker=math.sqrt(70) / 2 + 1)):
        ax.annotate(name, (c, s), textcoords="offset points", xytext=(_DX, dy), fontsize=8)
    ax.set_xlabel(f"cost: {_text(cost_label)}")
    ax.set_ylabel(f"mean {_text(metric)} of the model in service")
    ax.set_title(f"Cost vs mean {_text(metric)} (red: the Pareto front)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")  # a fixed corner would hide the points that lie there
    return _png(fig)
