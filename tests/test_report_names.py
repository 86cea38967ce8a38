"""Report pages and figures show names as written, whatever characters they hold."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from modyn_store.app.report.build import render_report
from modyn_store.app.report.records import PipelineResult, TriggerRecord


def _result(name: str, label: str = "s0") -> PipelineResult:
    return PipelineResult(name, "t", "s", "u", (TriggerRecord(0, 1, 100, 0.2),), ((0.7, 0.6),), (label, "s1"))


@pytest.mark.parametrize("name", [r"cost $\frac$ x", "a$b$c", "$$"])
def test_dollar_signs_are_not_mathtext(tmp_path: Path, name: str) -> None:
    files = render_report([_result(name, label=name)], tmp_path)
    assert Path(files.curve).stat().st_size > 0


def test_leading_underscore_keeps_its_legend_entry(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        render_report([_result("_hidden")], tmp_path)


def test_markup_in_names_is_text_in_markdown_and_html(tmp_path: Path) -> None:
    files = render_report([_result("<script>alert(1)</script>")], tmp_path, title="<b>t</b>")
    md = Path(files.markdown).read_text()
    page = Path(files.html).read_text()
    assert "<script>" not in md and "<b>" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "<script>" not in page
