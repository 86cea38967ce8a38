""""Where the wall time went": a pipeline's parts add up to its wall time.

Bookkeeping is defined as what is neither optimization, nor scoring nor evaluation, so the
time a pipeline spends outside its trainings (the versions it replays after its last training:
delta reads and trigger decisions) is bookkeeping too, not time the table leaves out.
"""

from __future__ import annotations

import pytest
from pipeline_helpers import tiny

from modyn_store.app.pipeline.bench import time_table
from modyn_store.app.pipeline.config import parse_pipeline
from modyn_store.app.pipeline.runner import RunResult
from modyn_store.app.pipeline.training_info import TrainingInfo
from modyn_store.app.report.records import PipelineResult, TriggerRecord


def _run(seconds: float, evaluation: float) -> RunResult:
    cfg = parse_pipeline(tiny("once"))
    t = TrainingInfo(0, "once-0000", (5, 240), 0, "retrain", 2688, 5376, train_seconds=0.05, wall_seconds=0.09,
                     score_seconds=0.01, bookkeeping_seconds=0.03)
    result = PipelineResult("once", "time", "all_data", "retrain", (TriggerRecord(0, 5, 5376, 0.05),), ((0.7, 0.6),),
                            ("s0", "s1"))
    return RunResult(cfg, "memory://x", (t,), result, None, seconds, 2688, evaluation_seconds=evaluation)


def _row(table: str, start: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(start))
    return [c.strip() for c in line.split("|")[1:-1]]


def test_pipeline_parts_add_up_to_its_wall_time() -> None:
    # 0.40 s of replay: 0.09 s in its one training, 0.11 s evaluating, 0.20 s replaying the
    # versions after the training (delta reads, trigger decisions): bookkeeping
    table = time_table([_run(0.40, 0.11)], {"ingest": 0.5}, 2.0)
    _, wall, fit, score, ev, book, pct = _row(table, "| pipeline once |")
    assert float(fit) + float(score) + float(ev) + float(book) == pytest.approx(float(wall), abs=0.011)
    assert float(book) == pytest.approx(0.40 - 0.05 - 0.01 - 0.11, abs=0.006)
    assert float(pct) == pytest.approx(100 * (0.40 - 0.05 - 0.01 - 0.11) / 0.40, abs=0.06)
    whole = _row(table, "| whole run |")
    assert float(whole[5]) == pytest.approx(float(book), abs=0.006)


def test_bookkeeping_is_never_negative() -> None:
    # timer jitter: parts measured apart may exceed the wall time by a hair
    table = time_table([_run(0.15, 0.11)], {}, 1.0)
    assert float(_row(table, "| pipeline once |")[5]) == 0.0


def test_a_pipeline_name_reads_back_as_written_in_both_pages() -> None:
    # the name is text in report.md (pipes escaped, entities for < > &) and in report.html
    import dataclasses
    import html

    from modyn_store.app.report.build import markdown_to_html

    run = _run(0.40, 0.11)
    name = "R&amp;D|<b>x</b>"
    run = dataclasses.replace(run, config=dataclasses.replace(run.config, name=name))
    page = markdown_to_html(time_table([run], {}, 1.0))
    cell = page.split("<td>", 2)[1].split("</td>", 1)[0]
    assert html.unescape(cell) == f"pipeline {name}" and "<b>" not in page
