"""A time trigger's reasons name their boundaries as ISO-8601 UTC times, exact to the fraction
of a second, before 1970 too, and across a daylight-saving change of the start's zone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from policies import Time, TriggerInput


def _reasons(trigger: Time, times: list[str]) -> list[tuple[int, str]]:
    ts = np.array(times, dtype="datetime64[ns]")
    fs = trigger.fire(TriggerInput(version=1, keys=np.arange(ts.size), ts=ts))
    return [(f.position, f.reason) for f in fs]


def test_reasons_are_utc_iso_times_across_a_daylight_saving_change() -> None:
    # Berlin goes to summer time on 2024-03-31: a day is still 86 400 s after it
    got = _reasons(Time(every="1d", start="2024-03-30T00:00:00+01:00"),
                   ["2024-03-30T10:00", "2024-03-31T00:30", "2024-03-31T23:30"])
    assert got == [(1, "event time reached 2024-03-30T23:00:00Z"), (2, "event time reached 2024-03-31T23:00:00Z")]


def test_a_boundary_within_a_second_is_shown_exactly_also_before_1970() -> None:
    got = _reasons(Time(every="1500ms", start="1960-01-01T00:00:00Z"),
                   ["1960-01-01T00:00:01", "1960-01-01T00:00:02", "1960-01-01T00:00:03.000000001"])
    assert got == [(1, "event time reached 1960-01-01T00:00:01.500Z"),
                   (2, "event time reached 1960-01-01T00:00:03Z")]
    got = _reasons(Time(every="1ns", start="1969-12-31T23:59:59.999999998"),
                   ["1969-12-31T23:59:59.999999998", "1969-12-31T23:59:59.999999999"])
    assert got == [(1, "event time reached 1969-12-31T23:59:59.999999999Z")]


def test_far_future_boundaries_are_named_in_utc() -> None:
    got = _reasons(Time(every="365d", start="2200-01-01"), ["2200-06-01", "2261-12-31"])
    assert got == [(1, "event time reached 2261-12-17T00:00:00Z")]


def _numeric(trigger: Time, times: list[float] | np.ndarray, cuts: tuple[int, ...] = ()) -> list[tuple[int, float | None]]:
    """(row, boundary) of each firing, the trigger resumed from its JSON state at each cut."""
    out, done = [], 0
    for v, part in enumerate(np.split(np.asarray(times), cuts), start=1):
        resumed = Time(every=trigger.every, start=trigger.start)
        resumed.load_state(json.loads(json.dumps(trigger.state())))
        trigger = resumed
        fs = trigger.fire(TriggerInput(version=v, keys=np.arange(part.size), ts=part))
        out += [(done + f.position, f.statistic) for f in fs]
        done += part.size
    return out


def test_a_float_event_time_fires_exactly_the_boundaries_at_or_before_it() -> None:
    # 0.3 / 0.1 is 2.9999999999999996: 0.3 reaches the boundary 3 * 0.1, named 0.3
    t = Time(every=0.1, start=0)
    fs = t.fire(TriggerInput(version=1, keys=np.arange(3), ts=np.array([0.0, 0.25, 0.3])))
    assert [(f.position, f.reason, f.statistic) for f in fs] == [
        (1, "event time reached 0.2", 0.2), (2, "event time reached 0.3", 0.3)]
    # 1.7 / 0.1 is 17.000000000000004: the boundary reached is 1.7, not 1.7000000000000002
    fs = Time(every=0.1, start=0).fire(TriggerInput(version=1, keys=np.arange(2), ts=np.array([0.0, 1.7])))
    assert [(f.position, f.statistic) for f in fs] == [(1, 1.7)]
    # integer event times with a fractional interval: 3 reaches 3 * 0.1 (named 3)
    fs = Time(every=0.1, start=0).fire(TriggerInput(version=1, keys=np.arange(2), ts=np.array([0, 3])))
    assert [(f.position, f.statistic) for f in fs] == [(1, 3.0)]


@pytest.mark.parametrize(("every", "start"), [(0.1, 0.0), (0.7, 1.7), (1 / 3, None), (0.1, 1e16),
                                              (2.5e-7, 1e9 + 0.1), (0.01, -0.3)])
def test_each_firing_is_at_the_first_event_time_at_or_after_its_boundary(every: float, start: float | None) -> None:
    rng = np.random.default_rng(3)
    origin = 0.0 if start is None else start
    times = origin + np.cumsum(rng.integers(0, 4, 60)) * every
    times[::2] = np.round(times[::2], 3)  # decimal event times next to computed ones
    times = np.maximum.accumulate(times)
    got = _numeric(Time(every=every, start=start), times)
    assert got == _numeric(Time(every=every, start=start), times, cuts=(7, 8, 30, 59))
    assert got
    for row, boundary in got:
        assert times[row] >= boundary and (row == 0 or times[row - 1] < boundary)
