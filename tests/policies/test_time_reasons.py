"""A time trigger's reasons name their boundaries as ISO-8601 UTC times, exact to the fraction
of a second, before 1970 too, and across a daylight-saving change of the start's zone."""

from __future__ import annotations

import numpy as np

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
