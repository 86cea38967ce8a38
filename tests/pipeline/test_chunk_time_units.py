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
from modyn_store.app.pipeline import parse_pipeline, run_pipeline
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
    with pytest.raises(InvalidArgumentError, match=r"invalid ts='1704067200000 \(column type int64\)'.*'1d'.*"
                                                   r"read as seconds.*timestamp.*'ts:86400000'"):
        run_pipeline(_cfg(_table(pa.array(_MS)), "1d"), str(tmp_path / "s"))
    assert not (tmp_path / "s").exists() or Store.open(str(tmp_path / "s")).version == 0


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
