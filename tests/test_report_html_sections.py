"""``report.html`` holds what ``report.md`` holds: the per-training tables and the sections a
run appends (how the report was made, where the wall time went), not only the summary table.

A bench's HTML page had none of them: a reader of it lost the command that made the report."""

from __future__ import annotations

from pathlib import Path

from modyn_store.app.report.build import append_section, render_report
from modyn_store.app.report.records import PipelineResult, TriggerRecord


def _result(name: str) -> PipelineResult:
    return PipelineResult(name, "time", "all_data", "retrain",
                          (TriggerRecord(0, 7, 5376, 0.25, slice_index=0), TriggerRecord(1, 9, 2688, 0.5, slice_index=1)),
                          ((0.7, 0.6, 0.5), (0.8, 0.7, 0.6)), ("s0", "s1", "s2"))


def test_the_html_page_has_the_per_training_tables_and_appended_sections(tmp_path: Path) -> None:
    files = render_report([_result("a<b>|c")], tmp_path)
    append_section(files, "\n## How this report was made\n\nA <grid> & more.\n\n```\nmodyn-store bench g.yaml && ls\n```\n\n"
                          "| part | wall s |\n|---|---:|\n| pipeline a\\|c | 1.25 |\n")
    md, page = Path(files.markdown).read_text(), Path(files.html).read_text()
    assert "## How this report was made" in md and "modyn-store bench g.yaml && ls" in md
    body = page.split("<body>", 1)[1]
    assert body.rstrip().endswith("</body></html>")
    assert "<h2>How this report was made</h2>" in body
    assert "<pre>modyn-store bench g.yaml &amp;&amp; ls</pre>" in body
    assert "<p>A &lt;grid&gt; &amp; more.</p>" in body
    assert "<td>pipeline a|c</td><td>1.25</td>" in body
    # the per-training table of the pipeline: one row per training, with its data version and samples
    assert "<th>data version</th>" in body and "<td>7</td><td>s0</td><td>5376</td>" in body
    assert "<b>" not in body  # names stay text
