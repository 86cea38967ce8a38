"""Render the results of a benchmark grid: heat maps, metric over time, cost vs metric, tables.

The pipeline runner fills one :class:`PipelineResult` per pipeline; :func:`render_report` writes
PNG figures (matplotlib, imported only when rendering), a Markdown page and a simple HTML page.

Definitions
-----------
- **evaluation matrix**: ``matrix[m][s]`` is the metric of model ``m`` (the model trained at
  trigger ``m``) on time slice ``s``.
- **current model**: the model in service while slice ``s`` arrives: the latest model whose
  trigger fired at a slice before ``s`` (``TriggerRecord.slice_index < s``). The "metric over
  time" curve is ``matrix[current(s)][s]``; slices before the first model have no point.
- **mean metric**: mean of that curve over the slices that have a point; **final metric**: its
  last point.
- **cost**, in deterministic units that do not depend on the machine or on what ran before:
  ``passes`` (the default) is samples trained (over all epochs) plus scoring forward passes;
  next to it the rows scanned (delta rows read for triggers plus rows materialized) and the wall
  seconds of everything the pipeline did per trigger (delta reads, trigger, selection, scoring,
  loading, training, catalog writes; measured after a warm-up). ``cost="wall"`` or
  ``cost="train"`` (optimization loop only) rank by seconds instead. The Pareto front holds the
  pipelines that no other pipeline beats on both cost (lower) and mean metric (better).

Example
-------
>>> r = PipelineResult(
...     name="every-slice", trigger="time 1 slice", selection="new data", update="finetune",
...     triggers=(TriggerRecord(0, 1, 100, 0.5, slice_index=0), TriggerRecord(1, 2, 100, 0.5, slice_index=1)),
...     matrix=((0.9, 0.8, 0.7), (0.85, 0.9, 0.8)), slice_labels=("d0", "d1", "d2"))
>>> current_model_curve(r)
[nan, 0.8, 0.8]
>>> summarize([r])[0].mean_metric
0.8
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec

from modyn_store.app._fmt import md_text, share
from modyn_store.app.report.plots import plot_cost_vs_metric, plot_heatmap, plot_metric_over_time
from modyn_store.app.report.records import COST_LABELS, COSTS, PipelineResult, SummaryRow, TriggerRecord
from modyn_store.core.errors import InvalidArgumentError

__all__ = [
    "ReportFiles",
    "append_section",
    "current_model_curve",
    "current_model_margins",
    "markdown_table",
    "markdown_to_html",
    "pareto_front",
    "render_report",
    "summarize",
]


@dataclass(frozen=True)
class ReportFiles:
    """Where :func:`render_report` wrote each file (fsspec paths)."""

    markdown: str
    html: str
    heatmaps: tuple[str, ...]
    curve: str
    pareto: str
    all: tuple[str, ...] = field(default=())


def current_model_curve(result: PipelineResult) -> list[float]:
    """The metric of the model in service on each slice (``NaN`` before the first model)."""
    curve: list[float] = []
    for s in range(len(result.slice_labels)):
        served = [t.index for t in result.triggers if t.last_slice < s]
        curve.append(result.matrix[served[-1]][s] if served else math.nan)
    return curve


def current_model_margins(result: PipelineResult) -> list[float]:
    """The 95% half-width of each point of :func:`current_model_curve` (``NaN`` where unknown)."""
    out: list[float] = []
    for s in range(len(result.slice_labels)):
        served = [t.index for t in result.triggers if t.last_slice < s]
        out.append(result.margins[served[-1]][s] if served and result.margins else math.nan)
    return out


def _mean_margin(result: PipelineResult) -> float:
    """Half-width of the mean of the curve: slices are independent samples."""
    if not result.margins:
        return math.nan
    pairs = [(v, m) for v, m in zip(current_model_curve(result), current_model_margins(result)) if not math.isnan(v)]
    if not pairs or any(math.isnan(m) for _, m in pairs):
        return math.nan
    return math.sqrt(sum(m * m for _, m in pairs)) / len(pairs)


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if not math.isnan(v)]


def pareto_front(costs: Sequence[float], scores: Sequence[float], *, higher_is_better: bool = True) -> list[bool]:
    """Mark the points no other point beats on both cost (lower) and score.

    Examples
    --------
    >>> pareto_front([1.0, 2.0, 3.0], [0.5, 0.4, 0.9])
    [True, False, True]
    """
    sign = 1.0 if higher_is_better else -1.0
    pts = [(c, sign * s) for c, s in zip(costs, scores)]
    out = []
    for i, (c, s) in enumerate(pts):
        if math.isnan(s):
            out.append(False)
            continue
        dominated = any(
            (c2 <= c and s2 >= s and (c2 < c or s2 > s)) for j, (c2, s2) in enumerate(pts) if j != i and not math.isnan(s2)
        )
        out.append(not dominated)
    return out


def summarize(results: Sequence[PipelineResult], *, cost: str = "passes") -> list[SummaryRow]:
    """The results table: one :class:`SummaryRow` per pipeline, in input order.

    All results must report the same metric (with the same direction), so they can be ranked.
    ``cost`` (one of :data:`~modyn_store.app.report.records.COSTS`) is the axis of the Pareto front.
    """
    if cost not in COSTS:
        raise InvalidArgumentError("cost", cost, f"one of {COSTS}")
    for r in results[1:]:
        if (r.metric, r.higher_is_better) != (results[0].metric, results[0].higher_is_better):
            raise InvalidArgumentError(
                f"results[{results.index(r)}].metric", r.metric, f"{results[0].metric!r} like the first result"
            )
    curves = [_finite(current_model_curve(r)) for r in results]
    means = [sum(c) / len(c) if c else math.nan for c in curves]
    finals = [c[-1] if c else math.nan for c in curves]
    higher = results[0].higher_is_better if results else True
    costs = [r.cost(cost) for r in results]
    front = pareto_front(costs, means, higher_is_better=higher)
    return [
        SummaryRow(r.name, r.trigger, r.selection, r.update, len(r.triggers), r.total_samples, r.total_seconds, m, f, p,
                   forward_passes=sum(t.forward_passes for t in r.triggers),
                   rows_scanned=sum(t.rows_scanned for t in r.triggers), wall_seconds=r.total_wall,
                   bookkeeping_seconds=float(sum(t.bookkeeping_seconds for t in r.triggers)), cost=c,
                   mean_margin=_mean_margin(r))
        for r, m, f, p, c in zip(results, means, finals, front, costs)
    ]


def markdown_table(rows: Sequence[SummaryRow], metric: str = "accuracy") -> str:
    """Render the summary rows as a Markdown table (numbers: seconds 2 decimals, metric 4).

    Deterministic cost first (samples trained, forward passes, rows scanned), then wall seconds
    of the whole pipeline, the share of it spent on bookkeeping, and the train seconds.
    """
    head = (
        f"| pipeline | trigger | selection | update | triggers | samples trained | forward passes | rows scanned "
        f"| wall seconds | bookkeeping % | train seconds | mean {metric} | ± 95% | final {metric} | Pareto |"
    )
    lines = [head, "|" + "---|" * 4 + "---:|" * 10 + ":---:|"]
    for r in rows:
        lines.append(
            f"| {md_text(r.name)} | {md_text(r.trigger)} | {md_text(r.selection)} | {md_text(r.update)} | {r.n_triggers} "
            f"| {r.samples_trained} | {r.forward_passes} | {r.rows_scanned} | {r.wall_seconds:.2f} "
            f"| {share(r.bookkeeping_seconds, r.wall_seconds)} | {r.train_seconds:.2f} "
            f"| {r.mean_metric:.4f} | {_pm(r.mean_margin)} | {r.final_metric:.4f} | {'yes' if r.pareto else ''} |"
        )
    return "\n".join(lines) + "\n"


def _slice_list(r: PipelineResult, slices: Sequence[int], limit: int = 6) -> str:
    """``"4 ('399.5'), 5 ('499.4')"``: slice indices with their labels, the first ``limit``."""
    shown = ", ".join(f"{s} ({r.slice_labels[s]!r})" for s in slices[:limit])
    return shown + (f", ... ({len(slices) - limit} more)" if len(slices) > limit else "")


def _partly_undefined_note(r: PipelineResult, curve: Sequence[float]) -> str | None:
    """The note for a curve with both defined and undefined points on the slices a model served."""
    first = min((t.last_slice + 1 for t in r.triggers), default=len(curve))
    served = range(max(first, 0), len(curve))
    missing = [s for s in served if math.isnan(curve[s])]
    defined = [s for s in served if not math.isnan(curve[s])]
    if not missing or not defined:
        return None
    final = (f"; the final {r.metric} is that of slice {_slice_list(r, defined[-1:])}, not of the last one"
             if missing[-1] > defined[-1] else "")
    return (f"- **{md_text(r.name)}**: {r.metric} is undefined (nan) on {len(missing)} of the {len(served)} slices a "
            f"model served: {_slice_list(r, missing)} (no evaluated rows, or a metric the slice's labels do not "
            f"define, e.g. ROC-AUC on a slice of one class); the mean {r.metric} is over the other "
            f"{len(defined)} slice{'s' if len(defined) != 1 else ''}{final}.")


def undefined_metric_notes(results: Sequence[PipelineResult]) -> list[str]:
    """A Markdown line for each pipeline whose mean and final metric are undefined (NaN), saying
    why: no model, no slice after any training's cutoff, or slices without evaluated rows; and
    one for each pipeline whose curve is undefined on some of the slices a model served, naming
    them (the mean and final metric then cover only the other slices)."""
    out = []
    for r in results:
        curve = current_model_curve(r)
        if any(not math.isnan(v) for v in curve):
            note = _partly_undefined_note(r, curve)
            if note is not None:
                out.append(note)
            continue
        if not r.triggers:
            why = "it never trained, so no model served any slice"
        elif all(t.last_slice >= len(r.slice_labels) - 1 for t in r.triggers):
            why = "every training's cutoff falls in the last time slice, so no model served a later one"
        else:
            why = ("the slices after its trainings' cutoffs hold no evaluated rows (event times that do not "
                   "spread over the slices, e.g. one event time for every row)")
        out.append(f"- **{md_text(r.name)}**: mean and final {r.metric} are undefined (nan): {why}.")
    return out


def _pm(m: float) -> str:
    return "-" if math.isnan(m) else f"{m:.4f}"


def _html_table(rows: Sequence[SummaryRow], metric: str) -> str:
    cols = ["pipeline", "trigger", "selection", "update", "triggers", "samples trained", "forward passes",
            "rows scanned", "wall seconds", "bookkeeping %", "train seconds", f"mean {metric}", "± 95%",
            f"final {metric}", "Pareto"]  # fmt: skip
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"]
    for r in rows:
        cells = [r.name, r.trigger, r.selection, r.update, str(r.n_triggers), str(r.samples_trained),
                 str(r.forward_passes), str(r.rows_scanned), f"{r.wall_seconds:.2f}",
                 share(r.bookkeeping_seconds, r.wall_seconds), f"{r.train_seconds:.2f}", f"{r.mean_metric:.4f}",
                 _pm(r.mean_margin), f"{r.final_metric:.4f}", "yes" if r.pareto else ""]  # fmt: skip
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _trigger_table(r: PipelineResult) -> str:
    """One row per training; bookkeeping split into delta reads and trigger, selection (without
    scoring passes), and the rest (materializing the train set, checkpoint and catalog writes)."""
    lines = ["| trigger | data version | last slice | samples | train seconds | forward passes | rows scanned "
             "| wall seconds | bookkeeping seconds | bookkeeping % | delta + trigger s | selection s "
             "| loading + catalog s |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t in r.triggers:
        label = (r.slice_labels[t.last_slice] if 0 <= t.last_slice < len(r.slice_labels)
                 else "(before the first)" if t.last_slice < 0 else str(t.last_slice))
        lines.append(f"| {t.index} | {t.data_version} | {md_text(label)} | {t.n_samples} | {t.train_seconds:.2f} "
                     f"| {t.forward_passes} | {t.rows_scanned} | {t.wall:.2f} | {t.bookkeeping_seconds:.2f} "
                     f"| {share(t.bookkeeping_seconds, t.wall)} | {t.trigger_seconds:.2f} "
                     f"| {t.selection_bookkeeping:.2f} | {t.loading_seconds:.2f} |")
    return "\n".join(lines) + "\n"


def _colour_limits(results: Sequence[PipelineResult]) -> tuple[float, float] | None:
    """The lowest and highest finite metric value of all the pipelines' matrices (``None`` when
    there is none): the ends of the colour scale that every heat map of a report shares."""
    values = [v for r in results for row in r.matrix for v in row if math.isfinite(v)]
    if not values:
        return None
    low, high = min(values), max(values)
    return (low, high) if high > low else (low - 0.5, high + 0.5)


def _html_text(md: str) -> str:
    """Markdown text of a report (names made plain by :func:`~modyn_store.app._fmt.md_text`) as
    HTML text: escaped pipes and ``**`` dropped, every character shown as written."""
    return html.escape(html.unescape(md.replace("\\|", "|").replace("**", "")), quote=False)


def markdown_to_html(md: str) -> str:
    """The Markdown of a report section as HTML: ``##`` headings, pipe tables, fenced code and
    paragraphs, the only forms the report writes; text is escaped, never markup."""
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
            out.append("<pre>" + html.escape("\n".join(lines[i + 1:end])) + "</pre>")
            i = end + 1
            continue
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            cells = [[c.strip() for c in re.split(r"(?<!\\)\|", r.strip())[1:-1]] for r in rows]
            body = [c for k, c in enumerate(cells) if not (k == 1 and all(re.fullmatch(r":?-+:?", x) for x in c))]
            tags = ["th" if k == 0 else "td" for k in range(len(body))]
            out.append("<table>" + "".join("<tr>" + "".join(f"<{t}>{_html_text(c)}</{t}>" for c in row) + "</tr>"
                                           for t, row in zip(tags, body)) + "</table>")
            continue
        m = re.match(r"(#{1,3}) (.*)", line)
        if m:
            out.append(f"<h{len(m.group(1))}>{_html_text(m.group(2))}</h{len(m.group(1))}>")
        elif line.strip():
            out.append(f"<p>{_html_text(line.removeprefix('- '))}</p>")
        i += 1
    return "\n".join(out)


def append_section(files: ReportFiles, markdown: str) -> None:
    """Add ``markdown`` (a section such as "How this report was made") to the end of the report:
    as written to ``report.md``, as HTML to ``report.html``, so the two pages hold the same."""
    fs, md_path = fsspec.core.url_to_fs(files.markdown)
    with fs.open(md_path, "a", encoding="utf-8") as fh:
        fh.write(markdown if markdown.endswith("\n") else markdown + "\n")
    fs, html_path = fsspec.core.url_to_fs(files.html)
    with fs.open(html_path, "r", encoding="utf-8") as fh:
        page = fh.read()
    head, tail = page.rsplit("</body>", 1)
    with fs.open(html_path, "w", encoding="utf-8") as fh:
        fh.write(head + markdown_to_html(markdown) + "\n</body>" + tail)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:60] or "pipeline"


def _drop_stale_heatmaps(fs: Any, root: str, written: set[str]) -> None:
    """Remove the heat maps an earlier report left in ``root`` (another store's pipelines under
    names this report does not write); other files are left as they are. The folder is listed,
    not globbed: a folder named ``out*`` or ``out[12]`` is no pattern over other folders."""
    for path in fs.ls(root, detail=False):
        name = str(path).rstrip("/").rsplit("/", 1)[-1]
        if name not in written and re.fullmatch(r"heatmap_\d{2,}_[^/]*\.png", name) and fs.isfile(path):
            fs.rm_file(path)


def render_report(results: Sequence[PipelineResult], out_dir: str | Path, *, title: str = "Benchmark report",
                  cost: str = "passes") -> ReportFiles:
    """Write figures and pages for ``results`` into ``out_dir`` (a local path or fsspec URL).

    ``cost`` (one of :data:`~modyn_store.app.report.records.COSTS`) is the x axis of the
    cost-vs-metric plot and the Pareto front; the default counts work (samples trained plus
    forward passes), not seconds.

    Files: ``heatmap_<i>_<name>.png`` per pipeline (all on one colour scale, from the lowest to
    the highest value of every pipeline's matrix), ``metric_over_time.png``,
    ``cost_vs_metric.png``, ``report.md`` and ``report.html``. File names are derived from the
    pipeline position plus a sanitized name, so names cannot leave ``out_dir``.

    Examples
    --------
    >>> import tempfile
    >>> r = PipelineResult("p", "amount 100", "new data", "retrain", (TriggerRecord(0, 1, 100, 0.2),),
    ...                    ((0.7, 0.6),), ("s0", "s1"))
    >>> files = render_report([r], tempfile.mkdtemp())
    >>> files.markdown.endswith("report.md")
    True
    """

    if not results:
        raise InvalidArgumentError("results", [], "at least one PipelineResult")
    metric = results[0].metric
    fs, root = fsspec.core.url_to_fs(str(out_dir))
    fs.makedirs(root, exist_ok=True)
    rows = summarize(results, cost=cost)

    def write(name: str, data: bytes) -> str:
        path = f"{root.rstrip('/')}/{name}"
        with fs.open(path, "wb") as fh:
            fh.write(data)
        return path

    heatmaps = []
    limits = _colour_limits(results)
    for i, r in enumerate(results):
        heatmaps.append(write(f"heatmap_{i:02d}_{_slug(r.name)}.png", plot_heatmap(r, limits)))
    curve = write("metric_over_time.png", plot_metric_over_time(results, [current_model_curve(r) for r in results],
                                                                 [current_model_margins(r) for r in results]))
    pareto = write("cost_vs_metric.png", plot_cost_vs_metric(rows, metric=metric, cost_label=COST_LABELS[cost]))
    names = [p.rsplit("/", 1)[-1] for p in (curve, pareto, *heatmaps)]

    notes = undefined_metric_notes(results)
    md = [f"# {md_text(title)}", "", markdown_table(rows, metric), *(["\n".join(notes), ""] if notes else []), ""]
    md += [f"![metric over time]({names[0]})", "", f"![cost vs metric]({names[1]})", ""]
    md += [f"## {md_text(r.name)}\n\n![heat map]({n})\n\n{_trigger_table(r)}" for r, n in zip(results, names[2:])]
    markdown = write("report.md", "\n".join(md).encode())
    body = [f"<h1>{html.escape(title)}</h1>", _html_table(rows, metric)]
    body += [f"<p>{html.escape(n[2:].replace('**', ''))}</p>" for n in notes]
    body += [f'<img src="{html.escape(n)}" alt="{html.escape(n)}">' for n in names[:2]]
    body += [f'<h2>{html.escape(r.name)}</h2><img src="{html.escape(n)}" alt="heat map">\n'
             + markdown_to_html(_trigger_table(r)) for r, n in zip(results, names[2:])]
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title>"
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}img{max-width:100%}</style></head><body>\n"
        + "\n".join(body) + "\n</body></html>\n"
    )
    html_path = write("report.html", page.encode())
    _drop_stale_heatmaps(fs, root, {p.rsplit("/", 1)[-1] for p in heatmaps})
    return ReportFiles(markdown, html_path, tuple(heatmaps), curve, pareto, (markdown, html_path, curve, pareto, *heatmaps))
