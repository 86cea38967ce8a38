"""A time chunk rule (``"1d"``) reads integer and float event times as seconds since the epoch:
numbers beyond the ``datetime64[ns]`` range (milliseconds or finer) are refused, naming the
column type and the ways to chunk them, before any version is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.app.datasets.chunking import chunk_index
from modyn_store.app.cli.main import main
from modyn_store.app.pipeline import parse_pipeline, run_pipeline
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.core.errors import InvalidArgumentError

_DAY_MS = 86_400_000
#: three days of hourly event times in milliseconds since the epoch, from 2024-01-01 UTC
_MS = np.arange(0, 3 * _DAY_MS, 3_600_000, dtype=np.int64) + 1_704_067_200_000


def _cfg(table: pa.Table, chunk: str) -> Any:
    return parse_pipeline({"name": "ms", "source": {"data": table, "ts": "t", "label": "y", "chunk": chunk},
                           "model": {"name": "logreg"}, "trigger": {"name": "data_amount", "every": 10_000},
                           "evaluation": {"slices": 2}})


def _table(t: pa.Array) -> pa.Table:
    n = len(t)
    return pa.table({"t": t, "y": np.arange(n) % 2, "u": np.arange(n, dtype=np.float64)})


def test_integer_milliseconds_under_a_day_rule_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises(PipelineConfigError, match=r"source.chunk: invalid ts='1704067200000 \(column type int64\)'"
                                                  r".*'1d'.*read as seconds.*timestamp.*'ts:86400000'") as err:
        run_pipeline(_cfg(_table(pa.array(_MS)), "1d"), str(tmp_path / "s"))
    assert err.value.key == "source.chunk"
    assert not (tmp_path / "s").exists()  # refused before the store is made


def test_a_refused_chunk_rule_leaves_no_store_and_a_corrected_file_runs_on_the_same_store(tmp_path: Path) -> None:
    """The check used to run after the store was made and given the source's label map: the
    folder stayed, and the next run on it with another label column was refused ("the new label
    map ['F', 'M'] does not extend the store's ['a', 'b']"), naming no option."""
    import pyarrow.parquet as pq

    n = len(_MS)
    pq.write_table(pa.table({"t": _MS, "y": np.where(np.arange(n) % 2 == 0, "a", "b"),
                             "g": np.where(np.arange(n) % 3 == 0, "F", "M"), "u": np.arange(n, dtype=np.float64)}),
                   tmp_path / "ms.parquet")
    spec = tmp_path / "p.yaml"
    text = ("name: ms\nsource: {path: ms.parquet, ts: t, label: y, features: [u], chunk: 1d}\n"
            "model: {name: logreg}\ntrigger: {name: data_amount, every: 24}\nevaluation: {slices: 2}\n")
    spec.write_text(text)
    store = tmp_path / "runs" / "s"
    assert main(["run", str(spec), "--store", str(store)]) == 2
    assert not store.exists()
    spec.write_text(text.replace("label: y", "label: g").replace("chunk: 1d", f"chunk: 'ts:{_DAY_MS}'"))
    assert main(["run", str(spec), "--store", str(store)]) == 0
    appends = [r for r in Store.open(str(store)).log() if r.op == "append"]
    assert [r.inserted for r in appends] == [24, 24, 24]


def test_the_cli_names_the_file_line_and_source_chunk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow.parquet as pq

    pq.write_table(_table(pa.array(_MS)), tmp_path / "ms.parquet")
    spec = tmp_path / "p.yaml"
    spec.write_text("name: ms\nsource:\n  path: ms.parquet\n  ts: t\n  label: y\n  chunk: 1d\n"
                    "model: {name: logreg}\ntrigger: {name: data_amount, every: 24}\n")
    assert main(["run", str(spec), "--store", str(tmp_path / "s")]) == 2
    assert "p.yaml:6: source.chunk: invalid ts='1704067200000 (column type int64)'" in capsys.readouterr().err


@pytest.mark.parametrize("t", [pa.array(_MS).cast(pa.timestamp("ms")), pa.array(_MS // 1000)],
                         ids=["timestamp_ms", "int_seconds"])
def test_a_day_rule_cuts_days_of_timestamps_and_integer_seconds(tmp_path: Path, t: pa.Array) -> None:
    run_pipeline(_cfg(_table(t), "1d"), str(tmp_path / "s"))
    appends = [r for r in Store.open(str(tmp_path / "s")).log() if r.op == "append"]
    assert [r.inserted for r in appends] == [24, 24, 24]


def test_a_width_in_the_columns_own_unit_cuts_days_of_milliseconds(tmp_path: Path) -> None:
    run_pipeline(_cfg(_table(pa.array(_MS)), f"ts:{_DAY_MS}"), str(tmp_path / "s"))
    appends = [r for r in Store.open(str(tmp_path / "s")).log() if r.op == "append"]
    assert [r.inserted for r in appends] == [24, 24, 24]


@pytest.mark.parametrize("rule", ["1d", "1h", "1s"])
def test_float_and_integer_seconds_at_the_range_ends(rule: str) -> None:
    edge = (2**63 - 1) // 10**9
    width = {"1d": 86_400, "1h": 3_600, "1s": 1}[rule]
    got = chunk_index(pa.array([-edge, 0, edge]), rule).tolist()
    assert got == [0, -(-edge // width), -(-edge // width) + edge // width]  # buckets floor(t / width)
    for bad in (pa.array([0, edge + 1]), pa.array([-float(edge) - 2.0, 0.0])):
        with pytest.raises(InvalidArgumentError, match="read as seconds"):
            chunk_index(bad, rule)


def test_year_reads_integer_years_and_refuses_integer_times() -> None:
    assert chunk_index(pa.array([1905, 1905, 2013]), "year").tolist() == [0, 0, 108]
    assert chunk_index(pa.array([-9999, 9999]), "year").tolist() == [0, 19998]
    with pytest.raises(InvalidArgumentError, match=r"invalid ts='1704067200000 \(column type int64\)': "
                                                   r"expected a year from -9999 to 9999 for rule 'year'"):
        chunk_index(pa.array(_MS), "year")


@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Kolkata", "+05:30"])
def test_year_and_day_rules_cut_a_zoned_timestamp_at_the_same_utc_boundaries(tz: str) -> None:
    new_year = 1704067200  # 2024-01-01T00:00Z
    secs = np.array([new_year - 7 * 3600, new_year - 1, new_year, new_year + 7 * 3600], np.int64)
    zoned = pa.array(secs, pa.timestamp("s", tz=tz))
    by_day = chunk_index(zoned, "1d")
    assert by_day.tolist() == [0, 0, 1, 1]
    assert chunk_index(zoned, "year").tolist() == by_day.tolist()
    assert chunk_index(zoned, "year").tolist() == chunk_index(pa.array(secs, pa.timestamp("s")), "year").tolist()


def test_bench_refuses_the_rule_before_any_store_and_removes_the_folders_it_made(tmp_path: Path,
                                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A grid used to ingest its shared store (label map first) before the rule was checked, and
    left that store and the empty --out folder behind."""
    import pyarrow.parquet as pq

    pq.write_table(_table(pa.array(_MS)), tmp_path / "ms.parquet")
    grid = tmp_path / "g.yaml"
    grid.write_text("title: ms\nbase:\n  source: {path: ms.parquet, ts: t, label: y, chunk: 1d}\n"
                    "  model: {name: logreg}\npipelines:\n  - {name: a, trigger: {name: data_amount, every: 24}}\n")
    out, store = tmp_path / "out", tmp_path / "stores"
    assert main(["bench", str(grid), "--out", str(out), "--store", str(store)]) == 2
    assert "source.chunk: invalid ts='1704067200000 (column type int64)'" in capsys.readouterr().err
    assert not out.exists() and not store.exists()
