"""The report renderer: files, PNG validity, and table numbers equal to the input."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modyn_store.core.errors import InvalidArgumentError
from modyn_store.app.report.build import current_model_curve, pareto_front, render_report, summarize
from modyn_store.app.report.records import PipelineResult, TriggerRecord

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _results(n_slices: int = 8) -> list[PipelineResult]:
    rng = np.random.default_rng(7)
    labels = [f"day {i}" for i in range(n_slices)]
    out = []
    for name, every, cost in [("every | slice", 1, 1.0), ("every 2", 2, 0.7), ("once", n_slices, 0.3)]:
        slices = list(range(0, n_slices, every))
        triggers = [TriggerRecord(i, 10 + i, int(rng.integers(100, 1000)), float(rng.uniform(0.1, 2.0)) * cost, slice_index=s,
                                  forward_passes=int(rng.integers(0, 500)), rows_scanned=int(rng.integers(1000, 5000)),
                                  wall_seconds=3.0 * cost, bookkeeping_seconds=0.5 * cost)
                    for i, s in enumerate(slices)]  # fmt: skip
        matrix = rng.uniform(0.5, 0.95, size=(len(slices), n_slices))
        out.append(PipelineResult(name, f"time {every}", "new data", "finetune", tuple(triggers), matrix.tolist(), labels))
    return out


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _reference_curve(r: PipelineResult) -> list[float]:
    out = []
    for s in range(len(r.slice_labels)):
        trained_before = [t for t in r.triggers if t.slice_index is not None and t.slice_index < s]
        out.append(r.matrix[max(t.index for t in trained_before)][s] if trained_before else math.nan)
    return out


def test_current_model_curve_matches_reference() -> None:
    for r in _results():
        got = current_model_curve(r)
        ref = _reference_curve(r)
        assert len(got) == len(ref)
        assert all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(got, ref))


def test_pareto_front_against_brute_force() -> None:
    rng = np.random.default_rng(1)
    costs, scores = rng.uniform(0, 10, 30).tolist(), rng.uniform(0, 1, 30).tolist()
    got = pareto_front(costs, scores)
    for i in range(30):
        dominated = any(costs[j] <= costs[i] and scores[j] >= scores[i] and j != i for j in range(30))
        assert got[i] == (not dominated)
    assert any(got)
    lower = pareto_front(costs, scores, higher_is_better=False)
    assert lower[int(np.argmin(scores))] and lower != got


def test_render_writes_valid_files_and_table_equals_input(tmp_path: Path) -> None:
    results = _results()
    files = render_report(results, tmp_path / "out", title="grid")
    assert len(files.heatmaps) == len(results)
    for p in (files.curve, files.pareto, *files.heatmaps):
        width, height = _png_size(Path(p))
        assert 300 <= width <= 2000 and 200 <= height <= 1500
        assert Path(p).parent == tmp_path / "out"
    md = Path(files.markdown).read_text()
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| pipeline |"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    rows = lines[start + 2 : end]
    assert len(rows) == len(results)
    for line, r in zip(rows, results):
        cells = [c.strip() for c in line.strip("|").replace("\\|", "\x00").split("|")]
        cells = [c.replace("\x00", "|") for c in cells]
        assert cells[0] == r.name
        assert int(cells[4]) == len(r.triggers)
        assert int(cells[5]) == sum(t.n_samples for t in r.triggers)
        assert int(cells[6]) == sum(t.forward_passes for t in r.triggers)
        assert int(cells[7]) == sum(t.rows_scanned for t in r.triggers)
        assert float(cells[8]) == pytest.approx(sum(t.wall for t in r.triggers), abs=0.006)
        assert float(cells[9]) == pytest.approx(100 * sum(t.bookkeeping_seconds for t in r.triggers)
                                                / sum(t.wall for t in r.triggers), abs=0.06)
        assert float(cells[10]) == pytest.approx(sum(t.train_seconds for t in r.triggers), abs=0.006)
        curve = [v for v in _reference_curve(r) if not math.isnan(v)]
        assert float(cells[11]) == pytest.approx(sum(curve) / len(curve), abs=6e-5)
        assert cells[12] == "-"  # no sampled evaluation, no interval
        assert float(cells[13]) == pytest.approx(curve[-1], abs=6e-5)
    # per-trigger tables list every trigger's samples, seconds and deterministic cost
    for r in results:
        for t in r.triggers:
            assert (f"| {t.index} | {t.data_version} | {r.slice_labels[t.last_slice]} | {t.n_samples} | "
                    f"{t.train_seconds:.2f} | {t.forward_passes} | {t.rows_scanned} | {t.wall:.2f} |") in md
    for name in ("metric_over_time.png", "cost_vs_metric.png"):
        assert f"]({name})" in md
    page = Path(files.html).read_text()
    # the summary table (a header and a row per pipeline), then each pipeline's per-trigger table
    n_rows = len(results) + 1 + sum(len(r.triggers) + 1 for r in results)
    assert page.startswith("<!DOCTYPE html>") and "every | slice" in page and page.count("<tr>") == n_rows
    summary = summarize(results)  # the Pareto front is on the deterministic cost by default
    passes = [sum(t.n_samples + t.forward_passes for t in r.triggers) for r in results]
    assert [s.cost for s in summary] == passes
    assert [s.pareto for s in summary] == pareto_front(passes, [s.mean_metric for s in summary])
    wall = summarize(results, cost="wall")
    assert [s.pareto for s in wall] == pareto_front([r.total_wall for r in results], [s.mean_metric for s in wall])
    with pytest.raises(InvalidArgumentError, match="cost"):
        summarize(results, cost="dollars")


def test_cost_axis_follows_the_choice() -> None:
    # one pipeline is cheap in seconds but expensive in work: the front depends on the axis
    base = _results()[0]
    cheap_work = PipelineResult("a", "t", "s", "u", (TriggerRecord(0, 1, 10, 5.0, slice_index=0, wall_seconds=9.0),),
                                ((0.9,) * 8,), base.slice_labels)
    cheap_time = PipelineResult("b", "t", "s", "u", (TriggerRecord(0, 1, 1000, 0.1, slice_index=0, wall_seconds=0.2),),
                                ((0.95,) * 8,), base.slice_labels)
    assert [s.pareto for s in summarize([cheap_work, cheap_time])] == [True, True]
    assert [s.pareto for s in summarize([cheap_work, cheap_time], cost="wall")] == [False, True]
    assert [s.cost for s in summarize([cheap_work, cheap_time], cost="train")] == [5.0, 0.1]


def test_hostile_names_stay_inside_the_folder(tmp_path: Path) -> None:
    r = _results()[0]
    evil = PipelineResult("../../etc/passwd <b>", r.trigger, r.selection, r.update, r.triggers, r.matrix, r.slice_labels)
    files = render_report([evil], tmp_path)
    assert all(Path(p).resolve().parent == tmp_path.resolve() for p in files.all)
    assert "<b>" not in Path(files.html).read_text().split("<body>")[1].replace("&lt;b&gt;", "")


def test_invalid_results_are_rejected(tmp_path: Path) -> None:
    r = _results()[0]
    with pytest.raises(InvalidArgumentError, match="matrix"):
        PipelineResult("x", "t", "s", "u", r.triggers, r.matrix[:-1], r.slice_labels)
    with pytest.raises(InvalidArgumentError, match=r"matrix\[0\]"):
        PipelineResult("x", "t", "s", "u", r.triggers, [row[:-1] for row in r.matrix], r.slice_labels)
    with pytest.raises(InvalidArgumentError, match="results"):
        render_report([], tmp_path)
    other = PipelineResult("y", "t", "s", "u", r.triggers, r.matrix, r.slice_labels, metric="auc")
    with pytest.raises(InvalidArgumentError, match=r"results\[1\].metric"):
        summarize([r, other])
    with pytest.raises(InvalidArgumentError, match="n_samples"):
        TriggerRecord(0, 1, -5, 1.0)


def test_heavy_modules_are_not_imported_by_the_package() -> None:
    code = (
        "import sys, modyn_store, modyn_store.app.datasets, modyn_store.app.report.build; "
        "bad = [m for m in ('torch', 'matplotlib') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_trigger_table_splits_bookkeeping_per_trigger(tmp_path: Path) -> None:
    triggers = (
        TriggerRecord(0, 3, 100, 2.0, slice_index=0, wall_seconds=5.0, bookkeeping_seconds=2.5,
                      trigger_seconds=0.5, select_seconds=1.25, score_seconds=0.5),
        TriggerRecord(1, 7, 200, 1.0, slice_index=1, wall_seconds=4.0, bookkeeping_seconds=3.0,
                      trigger_seconds=2.0, select_seconds=0.25),
    )
    r = PipelineResult("p", "time 2", "uniform", "retrain", triggers, [[0.6, 0.7], [0.65, 0.75]], ["a", "b"])
    md = Path(render_report([r], tmp_path).markdown).read_text()
    head = next(line for line in md.splitlines() if line.startswith("| trigger | data version"))
    names = [c.strip() for c in head.strip("|").split("|")]
    rows = [line for line in md.splitlines() if line.startswith("| 0 | 3 |") or line.startswith("| 1 | 7 |")]
    assert len(rows) == 2
    for line, t in zip(rows, triggers):
        cells = dict(zip(names, [c.strip() for c in line.strip("|").split("|")]))
        assert float(cells["bookkeeping seconds"]) == pytest.approx(t.bookkeeping_seconds)
        assert float(cells["bookkeeping %"]) == pytest.approx(100 * t.bookkeeping_seconds / t.wall, abs=0.06)
        assert float(cells["delta + trigger s"]) == pytest.approx(t.trigger_seconds)
        assert float(cells["selection s"]) == pytest.approx(t.select_seconds - t.score_seconds)
        parts = sum(float(cells[c]) for c in ("delta + trigger s", "selection s", "loading + catalog s"))
        assert parts == pytest.approx(t.bookkeeping_seconds, abs=0.011)
    with pytest.raises(InvalidArgumentError):
        TriggerRecord(0, 1, 1, 1.0, trigger_seconds=-1.0)


def test_an_undefined_mean_metric_is_explained(tmp_path: Path) -> None:
    from modyn_store.app.report.build import undefined_metric_notes

    nan = math.nan
    labels = ("s0", "s1", "s2")
    t = lambda i, last: TriggerRecord(i, 1, 10, 0.1, slice_index=last)  # noqa: E731
    cases = {
        "never": PipelineResult("never", "t", "s", "u", (), [], labels),
        "late": PipelineResult("late", "t", "s", "u", (t(0, 2),), [[0.5, 0.6, 0.7]], labels),
        "empty": PipelineResult("empty", "t", "s", "u", (t(0, 0),), [[0.5, nan, nan]], labels),
        "fine": PipelineResult("fine", "t", "s", "u", (t(0, 0),), [[0.5, 0.6, 0.7]], labels),
    }
    notes = undefined_metric_notes(list(cases.values()))
    assert [n.split("**")[1] for n in notes] == ["never", "late", "empty"]
    assert "never trained" in notes[0] and "last time slice" in notes[1] and "no evaluated rows" in notes[2]
    files = render_report(list(cases.values()), tmp_path)
    text = Path(files.markdown).read_text()
    assert all(n in text for n in notes)


def test_a_metric_undefined_on_some_served_slices_is_named(tmp_path: Path) -> None:
    # ROC-AUC is NaN on slices of one class: the mean and final figures cover only the other slices,
    # and the report must say so instead of showing slice 1's value as the final one
    from modyn_store.app.report.build import undefined_metric_notes

    nan = math.nan
    labels = ("d0", "d1", "d2", "d3")
    t = lambda i, last: TriggerRecord(i, 1, 10, 0.1, slice_index=last)  # noqa: E731
    tail = PipelineResult("tail", "t", "s", "u", (t(0, 0),), [[0.5, 0.8, nan, nan]], labels, metric="roc_auc")
    middle = PipelineResult("middle", "t", "s", "u", (t(0, 0),), [[0.5, 0.8, nan, 0.6]], labels, metric="roc_auc")
    fine = PipelineResult("fine", "t", "s", "u", (t(0, 0),), [[nan, 0.8, 0.7, 0.6]], labels, metric="roc_auc")
    rows = summarize([tail, middle, fine])
    assert (rows[0].mean_metric, rows[0].final_metric) == (0.8, 0.8)  # the figures themselves are unchanged
    notes = undefined_metric_notes([tail, middle, fine])
    assert [n.split("**")[1] for n in notes] == ["tail", "middle"]
    assert "undefined (nan) on 2 of the 3 slices a model served: 2 ('d2'), 3 ('d3')" in notes[0]
    assert "the mean roc_auc is over the other 1 slice;" in notes[0]
    assert "the final roc_auc is that of slice 1 ('d1'), not of the last one" in notes[0]
    assert "on 1 of the 3 slices a model served: 2 ('d2')" in notes[1] and "final" not in notes[1]
    files = render_report([tail, middle, fine], tmp_path)
    text = Path(files.markdown).read_text()
    assert all(n in text for n in notes)
    assert "not of the last one" in Path(files.html).read_text()


def test_a_report_over_an_earlier_one_leaves_no_stale_heat_maps(tmp_path: Path) -> None:
    def result(name: str) -> PipelineResult:
        return PipelineResult(name, "amount 100", "new data", "retrain", (TriggerRecord(0, 1, 100, 0.2),),
                              ((0.7, 0.6),), ("s0", "s1"))

    render_report([result("a"), result("b"), result("c")], tmp_path)
    (tmp_path / "notes.txt").write_text("mine\n")
    files = render_report([result("b"), result("c")], tmp_path)  # another store's report, same folder
    maps = sorted(p.name for p in tmp_path.glob("heatmap_*.png"))
    assert maps == sorted(Path(h).name for h in files.heatmaps) == ["heatmap_00_b.png", "heatmap_01_c.png"]
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


def test_labels_of_points_close_together_do_not_overlap() -> None:
    """Two pipelines of about the same cost and metric: their labels are stacked, a line apart,
    where they were drawn over each other; a label far from the others keeps its place."""
    from modyn_store.app.report.plots import _figure, _stacked

    fig = _figure(8.0, 5.5)
    ax = fig.add_subplot()
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 1)
    points = [(50.0, 0.5, "class-balanced"), (50.2, 0.499, "uniform-half"), (90.0, 0.1, "far")]
    dy = _stacked(fig, ax, points, fontsize=8)
    assert dy[2] == 4.0 and dy[0] == 4.0
    at = ax.transData.transform([(x, y) for x, y, _ in points]) * 72.0 / fig.dpi
    assert abs((at[0][1] + dy[0]) - (at[1][1] + dy[1])) >= 8 * 1.25  # a line apart at least


def test_a_heat_map_title_is_wrapped_to_its_figure() -> None:
    from modyn_store.app.report.plots import _figure, _title

    fig = _figure(5.0, 4.0)
    ax = fig.add_subplot()
    text = "sensors-weekly: accuracy of each model on each slice (white box: model in service)"
    _title(ax, text, 5.0 - 1.2)
    lines = ax.get_title().split("\n")
    assert len(lines) >= 2 and " ".join(lines) == text
    assert max(len(line) for line in lines) <= int(3.8 * 72 / 6)


def test_a_report_into_a_folder_named_like_a_pattern_removes_no_heat_map_elsewhere(tmp_path: Path) -> None:
    """The stale heat maps are those of the report's own folder: a folder named ``out*`` or
    ``out[12]`` is no pattern matching the heat maps of ``out-old`` or ``out1``."""
    result = PipelineResult("a", "amount 100", "new data", "retrain", (TriggerRecord(0, 1, 100, 0.2),),
                            ((0.7, 0.6),), ("s0", "s1"))
    for other in ("out-old", "out1"):
        (tmp_path / other).mkdir()
        (tmp_path / other / "heatmap_07_theirs.png").write_bytes(b"png")
    for name in ("out*", "out[12]"):
        files = render_report([result], tmp_path / name)
        assert [Path(h).name for h in files.heatmaps] == ["heatmap_00_a.png"]
        assert (tmp_path / name / "heatmap_00_a.png").exists()
    assert (tmp_path / "out-old" / "heatmap_07_theirs.png").read_bytes() == b"png"
    assert (tmp_path / "out1" / "heatmap_07_theirs.png").read_bytes() == b"png"
