"""Exact event-time window edges (integer times) and the range of selection seeds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fakes import MemorySnapshot

from modyn_store.core.errors import InvalidArgumentError
from policies import DataDrift, SelectionContext, TriggerInput, Uniform
from policies._pick import derive_seed
from policies._windows import RowBuffer, reached_span, within_span

I64 = np.iinfo(np.int64)
#: a present-day time in int64 nanoseconds, not a multiple of the float64 spacing (256 ns)
T = 1_700_000_000_000_000_001


def _window_ts(span: float, ts: list[int], dtype: Any = np.int64) -> list[int]:
    buf = RowBuffer(span=span)
    arr = np.array(ts, dtype=dtype)
    buf.append({"x": np.arange(arr.size)}, arr)
    return buf.window()[1].tolist()


# ---- event-time windows -------------------------------------------------------------------


def test_span_edge_is_exact_for_nanosecond_times() -> None:
    # newest - ts < span: T + 1 is 999 ns before the newest (inside), T is 1000 ns (outside)
    assert _window_ts(1000, [T, T + 1, T + 1000]) == [T + 1, T + 1000]
    assert _window_ts(1001, [T, T + 1, T + 1000]) == [T, T + 1, T + 1000]
    # float64 would round these times together; the newest one stays exact
    assert _window_ts(1, [T - 1, T]) == [T]
    buf = RowBuffer(span=2)  # the newest of several chunks
    buf.append({"x": np.arange(2)}, np.array([T, T + 3], dtype=np.int64))
    buf.append({"x": np.arange(2)}, np.array([T + 4, T + 5], dtype=np.int64))
    assert buf.window()[1].tolist() == [T + 4, T + 5]


def test_non_integral_span_on_integer_times_compares_the_real_values() -> None:
    # newest - ts < 1.5 holds the rows 0 and 1 before the newest, not 2
    assert _window_ts(1.5, [T, T + 1, T + 2]) == [T + 1, T + 2]
    assert _window_ts(0.5, [T, T + 1]) == [T + 1]
    start = np.int64(T)
    ts = np.array([T + 1, T + 2], dtype=np.int64)
    assert reached_span(ts, int(start), 1.5).tolist() == [False, True]


def test_span_edges_do_not_overflow_near_the_int64_limits() -> None:
    low = [int(I64.min), int(I64.min) + 5]
    assert _window_ts(10, low) == low
    assert _window_ts(5, low) == [low[1]]
    assert _window_ts(1e30, [int(I64.min), int(I64.max)]) == [int(I64.min), int(I64.max)]
    high = np.array([I64.max - 1, I64.max], dtype=np.int64)
    assert reached_span(high, int(I64.max) - 1, 1).tolist() == [False, True]
    assert reached_span(high, int(I64.max) - 1, 2).tolist() == [False, False]
    assert reached_span(high, int(I64.max), 1e30).tolist() == [False, False]
    assert within_span(np.array([0, 255], dtype=np.uint8), 300, 50).tolist() == [False, True]
    assert within_span(np.array([2**64 - 2, 2**64 - 1], dtype=np.uint64), 2**64 - 1, 1).tolist() == \
        [False, True]


def test_float_times_keep_working() -> None:
    assert _window_ts(1.0, [0.0, 0.5, 1.0, 1.5], np.float64) == [1.0, 1.5]  # type: ignore[list-item]
    assert reached_span(np.array([0.4, 0.5]), 0.0, 0.5).tolist() == [False, True]
    buf = RowBuffer(span=0.25)
    buf.append({"x": np.arange(2)}, np.array([0.0, 0.5]))
    buf.append({"x": np.arange(2)}, np.array([0.6, 0.7]))
    assert buf.window()[1].tolist() == [0.5, 0.6, 0.7]


def _datetimes(offsets_ns: list[int]) -> np.ndarray:
    return np.array([T + o for o in offsets_ns], dtype=np.int64).view("datetime64[ns]")


def test_data_drift_reference_window_edge_is_exact() -> None:
    # the reference holds the samples less than 1us after the first: 0..999 ns, not 1000 ns
    t = DataDrift(columns=["x"], metric="mean_shift", decision="threshold", threshold=1.0,
                  window_time="1us", every=2, min_samples=2)
    ts = _datetimes([0, 500, 999, 1000])  # no evaluation yet (every=2): the reference stays
    t.fire(TriggerInput(version=1, keys=np.arange(4), ts=ts, features={"x": np.arange(4.0)}))
    assert t._ref is not None and t._ref["x"].tolist() == [0.0, 1.0, 2.0]


def test_data_drift_duration_strings_are_whole_nanoseconds() -> None:
    # 8.3 * 1e9 is 8300000000.000001 in float64: the span is the whole 8.3 s
    t = DataDrift(columns=["x"], window_time="8.3s")
    assert t._span == 8_300_000_000
    assert DataDrift(columns=["x"], window_time="1.5ns")._span == 2
    assert DataDrift(columns=["x"], window_time=1.5)._span == 1.5  # a number is used as given
    with pytest.raises(InvalidArgumentError, match="window_time"):
        DataDrift(columns=["x"], window_time="0.4ns")


# ---- seeds --------------------------------------------------------------------------------

#: derive_seed outputs of recorded selections: they must never change
PINNED = [
    ((0,), 7896617691693857887),
    ((0, 3), 3291213472928352369),
    ((1, 1), 38901565946305238),
    ((7, 7, 0), 93150241580874706),
    ((7, 7, 5), 6789920356592938892),
    ((2**63 - 1, 3), 5883105733459131166),
    ((123456789, 5, 10**6 + 2), 3471241102078250233),
    ((2**40 + 17, 8, 3), 1111273528019214071),
    ((42, 12), 6382187654578084254),
]


@pytest.mark.parametrize(("args", "want"), PINNED)
def test_derive_seed_is_stable_for_in_range_seeds(args: tuple[int, ...], want: int) -> None:
    assert derive_seed(*args) == want
    state = np.random.SeedSequence(list(args)).generate_state(1, dtype=np.uint64)[0]
    assert derive_seed(*args) == int(state >> np.uint64(1))
    assert derive_seed(*(np.int64(a) for a in args)) == want


@pytest.mark.parametrize("seed", [-1, -(2**63), 2**63, 2**64 - 1])
def test_derive_seed_refuses_seeds_out_of_range(seed: int) -> None:
    with pytest.raises(InvalidArgumentError, match=r"an integer in \[0, 2\*\*63 - 1\]") as exc:
        derive_seed(seed, 3)
    assert exc.value.name == "seed" and exc.value.value == seed
    with pytest.raises(InvalidArgumentError) as exc:
        derive_seed(0, seed)
    assert exc.value.name == "salt"


def _snapshot() -> MemorySnapshot:
    return MemorySnapshot(pa.table({"key": np.arange(50, dtype=np.int64),
                                    "ts": np.arange(50, dtype=np.int64)}), version=1)


@pytest.mark.parametrize("seed", [-1, -(2**63), 2**63, True, 1.0, "3"])
def test_selection_context_refuses_seeds_outside_the_range(seed: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"an integer in \[0, 2\*\*63 - 1\]") as exc:
        SelectionContext(snapshot=_snapshot(), seed=seed)
    assert exc.value.name == "seed"
    ctx = SelectionContext(snapshot=_snapshot(), seed=1)
    with pytest.raises(InvalidArgumentError):
        ctx.replace(seed=seed)


def test_selection_seeds_at_the_ends_of_the_range_select_apart() -> None:
    strategy = Uniform(ratio=0.5)
    top = SelectionContext(snapshot=_snapshot(), seed=np.int64(2**63 - 1))
    assert type(top.seed) is int and top.seed == 2**63 - 1
    zero = strategy.select(SelectionContext(snapshot=_snapshot(), seed=0)).keys
    one = strategy.select(SelectionContext(snapshot=_snapshot(), seed=1)).keys
    assert strategy.select(top).keys.size == 25
    assert zero.tolist() != one.tolist()


def test_select_on_ray_refuses_a_negative_seed(real_store: Any) -> None:
    from modyn_store.app.pipeline.ray_exec import select_on_ray

    with pytest.raises(InvalidArgumentError) as exc:
        select_on_ray(Uniform(ratio=0.5), real_store.as_of(None), seed=-1)
    assert exc.value.name == "seed"


@pytest.mark.parametrize("arg", [{"seed": 7}, {"seed": 0}, {"scores": {}}, {"scores_version": 1}])
def test_select_on_ray_refuses_arguments_a_full_context_would_override(real_store: Any, arg: dict) -> None:
    """A SelectionContext holds its own seed and scores: an argument beside it would be ignored."""
    from modyn_store.app.pipeline.ray_exec import select_on_ray

    ctx = SelectionContext(snapshot=real_store.as_of(None), seed=3)
    with pytest.raises(InvalidArgumentError) as exc:
        select_on_ray(Uniform(ratio=0.5), ctx, **arg)
    assert exc.value.name == next(iter(arg))
