"""A data drift trigger's ``window_time`` must be in the event times' unit: a duration string for
datetimes, a number for numeric event times; the other is refused, not read as a window that never
fills (``"1h"`` as 3.6e12 seconds) or never holds enough samples (``3600`` as nanoseconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store.app.pipeline import parse_pipeline
from modyn_store.app.pipeline.config import PipelineConfigError
from modyn_store.core.errors import InvalidArgumentError
from policies import TriggerInput
from policies.data_drift import DataDrift

_N = 4000
_SECONDS = np.arange(_N, dtype=np.int64) * 60  # a row a minute


def _drift(window_time: str | float) -> DataDrift:
    return DataDrift(columns=["x"], metric="mean_shift", decision="threshold", threshold=1.0,
                     window_time=window_time, every=60, min_samples=10)


def _input(ts: np.ndarray) -> TriggerInput:
    x = np.r_[np.random.default_rng(0).normal(0, 1, _N // 2), np.random.default_rng(1).normal(5, 1, _N // 2)]
    return TriggerInput(version=1, keys=np.arange(_N), ts=ts, features={"x": x})


def test_an_hour_of_datetimes_and_3600_integer_seconds_find_the_same_drift() -> None:
    dated = _drift("1h").fire(_input(_SECONDS.astype("datetime64[s]").astype("datetime64[ns]")))
    numeric = _drift(3600).fire(_input(_SECONDS))
    assert [f.position for f in dated] == [f.position for f in numeric] == [2040]


@pytest.mark.parametrize(("window_time", "ts", "expected"), [
    ("1h", _SECONDS, "a number in the unit of the numeric ts column"),
    (3600, _SECONDS.astype("datetime64[s]").astype("datetime64[ns]"), "a duration string like '1d'"),
])
def test_a_window_in_the_other_unit_is_refused_and_the_trigger_is_unchanged(
        window_time: str | float, ts: np.ndarray, expected: str) -> None:
    t = _drift(window_time)
    before = t.state()
    with pytest.raises(InvalidArgumentError, match=f"invalid window_time={window_time!r}: expected {expected}"):
        t.fire(_input(ts))
    assert t.state() == before


def test_a_pipeline_names_the_key_when_the_window_does_not_fit_the_column(tmp_path: Path) -> None:
    table = pa.table({"t": _SECONDS, "y": np.arange(_N) % 2, "u": np.arange(_N, dtype=np.float64)})
    with pytest.raises(PipelineConfigError, match=r"trigger\.window_time.*holds numbers \(int64\).*not '1h'"):
        parse_pipeline({"name": "dw", "source": {"data": table, "ts": "t", "label": "y", "chunk": "n:1000"},
                        "model": {"name": "logreg"},
                        "trigger": {"name": "data_drift", "columns": ["features"], "window_time": "1h"}})


def test_a_warmup_trigger_is_checked_against_the_column_too() -> None:
    table = pa.table({"t": _SECONDS, "y": np.arange(_N) % 2, "u": np.arange(_N, dtype=np.float64)})
    with pytest.raises(PipelineConfigError, match=r"trigger\.warmup_trigger\.every.*holds numbers"):
        parse_pipeline({"name": "dw", "source": {"data": table, "ts": "t", "label": "y", "chunk": "n:1000"},
                        "model": {"name": "logreg"},
                        "trigger": {"name": "data_drift", "columns": ["features"], "window": 100, "warmup": 500,
                                    "warmup_trigger": {"name": "time", "every": "1h"}}})


@pytest.mark.parametrize("window", [20, 500, 2])
def test_a_window_in_samples_and_one_of_event_time_together_are_refused(window: int) -> None:
    # one of them would be ignored: the window would not be the one asked for
    with pytest.raises(InvalidArgumentError) as err:
        DataDrift(columns=["x"], window=window, window_time=5.0)
    assert err.value.name == "window" and "window_time=5.0" in str(err.value)
    with pytest.raises(InvalidArgumentError, match="window_time"):
        DataDrift.from_config({"name": "data_drift", "columns": ["x"], "window": window, "window_time": "1h"})


def test_either_window_round_trips_through_its_config() -> None:
    spanned = DataDrift(columns=["x"], window_time="1h")
    assert spanned.window is None and spanned.to_config()["window"] is None
    assert DataDrift.from_config(spanned.to_config()) == spanned
    counted = DataDrift(columns=["x"])
    assert counted.window == 500 and DataDrift.from_config(counted.to_config()) == counted
