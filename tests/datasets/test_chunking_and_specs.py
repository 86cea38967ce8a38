"""Chunking rules against plain references, and a conformance check of every registered spec."""

from __future__ import annotations

import inspect
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pytest

from modyn_store.app.datasets import DATASETS, chunk_index, iter_slices
from modyn_store.app.datasets.download import safe_filename
from modyn_store.core.errors import InvalidArgumentError


def test_rules_match_plain_references() -> None:
    rng = np.random.default_rng(0)
    secs = np.sort(rng.integers(1_500_000_000, 1_600_000_000, 500))
    ts = pa.array(secs, pa.int64()).cast(pa.timestamp("s"))
    day = secs // 86_400
    assert np.array_equal(chunk_index(ts, "1d"), day - day[0])
    week = secs // (7 * 86_400)
    assert np.array_equal(chunk_index(ts, "7d"), week - week[0])
    hours = secs // (6 * 3600)
    assert np.array_equal(chunk_index(ts.cast(pa.timestamp("ms")), "6h"), hours - hours[0])
    years = np.array([datetime.fromtimestamp(int(s), tz=timezone.utc).year for s in secs])
    assert np.array_equal(chunk_index(ts, "year"), years - years[0])
    assert np.array_equal(chunk_index(pa.array(secs), "1d"), day - day[0])
    ints = np.sort(rng.integers(0, 10_000, 300))
    assert np.array_equal(chunk_index(pa.chunked_array([ints[:100], ints[100:]]), "ts:365"), ints // 365 - ints[0] // 365)
    assert np.array_equal(chunk_index(ints, "n:7"), np.arange(300) // 7)
    assert np.array_equal(chunk_index(pa.array([2015, 2015, 2017]), "year"), [0, 0, 2])


def test_iter_slices_partitions_the_table() -> None:
    ts = np.array([0, 0, 3, 9, 9, 9, 30])
    table = pa.table({"ts": ts, "x": np.arange(7)})
    got = list(iter_slices(table, "ts:3"))
    assert [i for i, _ in got] == [0, 1, 3, 10]
    assert [t.column("x").to_pylist() for _, t in got] == [[0, 1], [2], [3, 4, 5], [6]]
    assert sum(t.num_rows for _, t in got) == table.num_rows
    assert list(iter_slices(table.slice(0, 0), "n:2")) == []
    with pytest.raises(InvalidArgumentError, match="sorted"):
        list(iter_slices(pa.table({"ts": [5, 1]}), "ts:1"))
    with pytest.raises(InvalidArgumentError, match="time"):
        list(iter_slices(table, "n:2", ts="time"))


@pytest.mark.parametrize("rule", ["n:0", "0d", "week", "ts:", "3m", "ts:-1"])
def test_invalid_rules_are_rejected(rule: str) -> None:
    with pytest.raises(InvalidArgumentError, match="rule"):
        chunk_index(pa.array([1, 2, 3]), rule)


def test_type_errors_name_the_column() -> None:
    with pytest.raises(InvalidArgumentError, match="ts"):
        chunk_index(pa.array(["2024-01-01"]), "1d")
    with pytest.raises(InvalidArgumentError, match="ts"):
        chunk_index(pa.array([1.5, 2.5]), "ts:2")
    with pytest.raises(InvalidArgumentError, match="ts"):
        chunk_index(pa.array([1, None]), "n:1")
    with pytest.raises(InvalidArgumentError, match="ts"):
        chunk_index(pa.array([0], pa.int64()).cast(pa.timestamp("s")), "ts:2")


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_spec_is_consistent(name: str) -> None:
    spec = DATASETS[name]
    assert spec.name == name
    assert spec.task in ("binary", "multiclass")
    if spec.task == "binary":
        assert spec.n_classes == 2
    else:
        assert spec.n_classes is None or spec.n_classes > 2
    assert safe_filename(spec.filename) == spec.filename
    assert spec.source_url.startswith("https://") and spec.license and spec.description
    assert "path" in inspect.signature(spec.loader).parameters
    assert set(dict(spec.defaults)) <= set(inspect.signature(spec.loader).parameters)
    sample = pa.array([0, 400, 800], pa.int64())
    if spec.default_chunking.endswith(("d", "h")) and spec.default_chunking[:-1].isdigit():
        sample = sample.cast(pa.timestamp("s"))
    assert chunk_index(sample, spec.default_chunking)[0] == 0
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]


def test_public_names_resolve() -> None:
    import modyn_store.app.datasets as datasets

    assert datasets.__all__ == sorted(datasets.__all__)
    for name in datasets.__all__:
        assert getattr(datasets, name) is not None


def test_time_rules_take_float_seconds_rounded_down() -> None:
    secs = np.array([-0.5, 0.0, 3599.9, 3600.0, 86_399.5, 86_400.25])
    assert chunk_index(pa.array(secs), "1h").tolist() == [0, 1, 1, 2, 24, 25]  # -0.5 s is in hour -1
    assert chunk_index(pa.array(secs), "1d").tolist() == [0, 1, 1, 1, 1, 2]
    with pytest.raises(InvalidArgumentError, match="finite event times"):
        chunk_index(pa.array([0.0, np.nan]), "1d")
