"""Evaluation slices over integer event times: rows are assigned by exact comparisons with the
edges, not after rounding nanosecond times to float64 (256 ns apart at present-day times)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from training.eval_sample import event_times, inside, slice_keys
from modyn_store.core.errors import InvalidArgumentError
from training.evaluation import MAX_WINDOWS, Slice, time_slices

T = 1_700_000_000_000_000_001  # ns; not a float64 value (float64(T) == T - 1)


def _store(tmp_path, ts: list[int], unit: str | None = "ns") -> Store:
    store = Store.open(str(tmp_path / "s"), create=True)
    col = pa.array(ts, pa.timestamp(unit)) if unit else pa.array(ts, pa.int64())
    store.append(pa.table({"key": np.arange(len(ts), dtype=np.int64), "ts": col,
                           "label": np.zeros(len(ts), np.int64)}))
    return store


@pytest.mark.parametrize("unit", ["ns", None])
def test_neighbouring_nanoseconds_fall_on_their_own_side_of_an_edge(tmp_path, unit) -> None:
    assert float(T) == float(T - 1) == float(T + 1)  # what rounding would have merged
    store = _store(tmp_path, [T - 1, T, T + 1], unit)
    slices = [Slice("before", -float("inf"), T), Slice("from", T, T + 1), Slice("after", T + 1, float("inf"))]
    got = slice_keys(store.as_of(None), slices)
    assert [s.keys.tolist() for s in got] == [[0], [1], [2]]
    assert [s.population for s in got] == [1, 1, 1]


def test_time_slices_hold_the_first_and_last_time_exactly(tmp_path) -> None:
    ts = [T - 300, T - 5, T + 7, T + 2**12 + 3]  # the last is no float64 either
    store = _store(tmp_path, ts)
    for kwargs in ({"n": 1}, {"n": 3}, {"every": 1000.0}):
        slices = time_slices(store, **kwargs)
        assert slices[0].start <= ts[0] and slices[-1].end >= ts[-1] and slices[-1].closed
        got = slice_keys(store.as_of(None), slices)
        assert sorted(np.concatenate([s.keys for s in got]).tolist()) == [0, 1, 2, 3], kwargs


def test_fractional_and_infinite_edges_on_integer_times() -> None:
    t = np.arange(5, dtype=np.int64)
    assert inside(t, Slice("a", 0.5, 2.5)).tolist() == [False, True, True, False, False]
    assert inside(t, Slice("a", 1, 3)).tolist() == [False, True, True, False, False]
    assert inside(t, Slice("a", 1, 3, closed=True)).tolist() == [False, True, True, True, False]
    assert inside(t, Slice("a", -float("inf"), float("inf"))).all()
    assert inside(t, Slice("a", -float("inf"), -float("inf"), closed=True)).sum() == 0
    assert inside(t, Slice("a", float("inf"), float("inf"), closed=True)).sum() == 0
    assert inside(t, Slice("a", 4, 4, closed=True)).tolist() == [False] * 4 + [True]
    big = np.array([2**63 - 1, -(2**63)], dtype=np.int64)
    assert inside(big, Slice("a", 2.0**63, float("inf"))).sum() == 0  # above every int64
    assert inside(big, Slice("a", -float("inf"), -(2.0**63), closed=True)).tolist() == [False, True]


def test_event_times_are_integers_for_integer_and_temporal_columns() -> None:
    assert event_times(pa.array([T], pa.timestamp("ns"))).tolist() == [T]
    assert event_times(pa.array([3], pa.int32())).dtype == np.int64
    assert event_times(pa.array([1.5])).dtype == np.float64
    d = event_times(pa.array([1], pa.date32()))
    assert d.tolist() == [86_400_000_000]  # a date: microseconds


@pytest.mark.parametrize("kwargs", [{"n": 10}, {"every": 100}])
def test_windows_narrower_than_the_float_edges_are_refused(tmp_path, kwargs) -> None:
    # 1000 ns at present-day times, where float64 edges are 256 ns apart: 10 windows of 100 ns
    # came out as [0, 256, 0, 256, 0, 0, 256, 0, 256, 0] ns wide (rows 0, 6, 0, 5, 0, 0, 5, 0, 4, 0)
    store = _store(tmp_path, list(range(T, T + 1000, 50)))
    with pytest.raises(InvalidArgumentError, match=f"invalid {next(iter(kwargs))}=.*float64, 256 apart"):
        time_slices(store, **kwargs)
    assert len(time_slices(store, n=1)) == 1  # windows of at least 2 spacings are drawn
    assert sum(s.keys.size for s in slice_keys(store.as_of(None), time_slices(store, every=600))) == 20


def test_too_many_windows_are_refused(tmp_path) -> None:
    store = _store(tmp_path, [0, 10**7], unit=None)
    with pytest.raises(InvalidArgumentError, match="invalid n="):
        time_slices(store, n=MAX_WINDOWS + 1)
    with pytest.raises(InvalidArgumentError, match="invalid every=.*at most 1000000 windows"):
        time_slices(store, every=1)  # seconds meant for a store in milliseconds, say
    assert len(time_slices(store, every=10**4)) == 1000
