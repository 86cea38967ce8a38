"""``Time(start=...)``: an ISO start is exact to the nanosecond, like the event times."""

from __future__ import annotations

import numpy as np
import pytest

from modyn_store.core.errors import InvalidArgumentError
from policies import Time, TriggerInput


def _positions(t: Time, ts: list[str]) -> list[int]:
    arr = np.array(ts, dtype="datetime64[ns]")
    return [f.position for f in t.fire(TriggerInput(version=1, keys=np.arange(arr.size), ts=arr))]


def test_sub_microsecond_digits_of_start_are_kept() -> None:
    # boundaries at start + j ns = ...005 + j: the first one (...006) is reached by the last row;
    # before, the start was cut to whole microseconds (...000) and every row passed a boundary
    t = Time(every="1ns", start="2020-01-01T00:00:00.000000005")
    rows = [f"2020-01-01T00:00:00.00000000{d}" for d in (3, 4, 5, 6)]
    assert _positions(t, rows) == [3]


@pytest.mark.parametrize(("start", "first"), [
    ("2020-01-01T00:00:00.123456789", 2),
    ("2020-01-01T01:00:00.123456789+01:00", 2),  # the same instant with an offset
    ("2020-01-01 00:00:00,1234567891", None),
])
def test_nanosecond_start_against_datetime64(start: str, first: int | None) -> None:
    if first is None:  # more than nanoseconds: refused, not rounded
        with pytest.raises(InvalidArgumentError) as err:
            Time(every="1s", start=start)
        assert err.value.name == "start" and "9 fractional digits" in str(err.value)
        return
    t = Time(every="1s", start=start)
    # the boundary is start + 1s = 00:00:01.123456789: 1 ns before it does not reach it
    rows = ["2020-01-01T00:00:00.5", "2020-01-01T00:00:01.123456788", "2020-01-01T00:00:01.123456789"]
    assert _positions(t, rows) == [first]
