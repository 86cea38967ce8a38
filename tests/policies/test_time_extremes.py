"""Time and TriggerInput at the edges of their number ranges: datetimes outside
``datetime64[ns]``, NaT, intervals longer than any int64 difference."""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from policies import Time, TriggerInput

_RANGE = "1677-09-21 to 2262-04-11"


def _fire(t: Time, ts: list[int] | np.ndarray, version: int = 1) -> list[tuple[int, int, str]]:
    arr = np.asarray(ts)
    return [(f.version, f.position, f.reason)
            for f in t.fire(TriggerInput(version=version, keys=np.arange(arr.size), ts=arr))]


@pytest.mark.parametrize(("values", "unit", "row", "shown"), [
    (["2000-01-01", "2000-01-01T12", "3000-01-01"], "s", 2, "3000-01-01T00:00:00"),
    (["1600-01-01", "2000-01-01"], "D", 0, "1600-01-01"),
    (["2262-04-11T23:47:16", "2262-04-11T23:47:17"], "s", 1, "2262-04-11T23:47:17"),
    (["2000", "2263"], "Y", 1, "2263"),
])
def test_datetimes_outside_ns_are_refused_not_wrapped(values: list[str], unit: str, row: int,
                                                      shown: str) -> None:
    ts = np.array(values, dtype=f"datetime64[{unit}]")
    with pytest.raises(InvalidArgumentError) as err:
        TriggerInput(version=1, keys=np.arange(ts.size), ts=ts)
    assert err.value.name == f"ts[{row}]"
    assert err.value.value == shown
    assert _RANGE in str(err.value)


@pytest.mark.parametrize("unit", ["s", "ns"])
def test_nat_event_time_is_refused_naming_its_row(unit: str) -> None:
    ts = np.array(["2000-01-01", "NaT", "2000-01-03"], dtype=f"datetime64[{unit}]")
    with pytest.raises(InvalidArgumentError) as err:
        Time(every="1d").fire(TriggerInput(version=1, keys=np.arange(3), ts=ts))
    assert err.value.name == "ts[1]"
    assert err.value.value == "NaT"


def test_datetimes_at_the_ends_of_ns_are_exact() -> None:
    ts = np.array(["1677-09-21T00:12:43.145224193", "2262-04-11T23:47:16.854775807"],
                  dtype="datetime64[ns]")
    assert TriggerInput(version=1, keys=np.arange(2), ts=ts).ts.tolist() == [-(2**63) + 1, 2**63 - 1]
    ts = np.array(["2262-04-11T23:47:16", "1970-01-01T00:00:01"], dtype="datetime64[s]")
    assert TriggerInput(version=1, keys=np.arange(2), ts=ts).ts.tolist() == [
        9223372036 * 10**9, 10**9]
    d = TriggerInput(version=1, keys=np.arange(2), ts=np.array(["2000-01-01", "2000-01-03"],
                                                              dtype="datetime64[D]"))
    assert [(f.version, f.position) for f in Time(every="1d").fire(d)] == [(1, 1)]


def test_store_datetimes_outside_ns_are_a_typed_error() -> None:
    store = Store.open(f"memory://time-extremes-{uuid.uuid4().hex}", create=True)
    ts = pa.array([dt.datetime(2000, 1, 1), dt.datetime(3000, 1, 1)], type=pa.timestamp("s"))
    v = store.append(pa.table({"ts": ts})).version
    with pytest.raises(InvalidArgumentError) as err:
        Time(every="1d").fire(store.delta(0, v, labels=False))
    assert err.value.name == "ts[1]"
    assert err.value.value == "3000-01-01T00:00:00"
    assert _RANGE in str(err.value)


@pytest.mark.parametrize("every", [1e30, 2**63, 10**400, 1e308], ids=["1e30", "2**63", "10**400", "1e308"])
def test_an_interval_longer_than_int64_never_passes_a_boundary(every: float) -> None:
    t = Time(every=every, start=0)
    assert _fire(t, [1, 2, 3]) == []
    assert _fire(t, [-(2**62), 2**63 - 1], version=2) == []
    late = Time(every=every)  # the origin is the first event time (5); a late one follows
    assert _fire(late, [5]) == [] and _fire(late, [-(2**62), 2**62], version=2) == []
    assert _fire(Time(every=every, start=0.5), [-5, 1, 2**62]) == []


def test_a_large_integer_interval_is_exact() -> None:
    # as float64, 2**63 - 1 is 2**63 (no boundary reachable) and 2**53 + 1 is 2**53
    t = Time(every=2**63 - 1, start=-5)
    assert _fire(t, [-6, -5, 2**62, 2**63 - 7, 2**63 - 6]) == [
        (1, 4, "event time reached 9223372036854775802")]
    assert _fire(Time(every=2**53 + 1, start=0), [2**53, 2**53 + 1]) == [
        (1, 1, "event time reached 9007199254740993")]


def test_a_fractional_start_at_the_smallest_int64_time() -> None:
    # ts - 1 wrapped around to the largest int64: the first sample fired at a far boundary
    assert _fire(Time(every=10, start=0.5), [-(2**63), 5, 15]) == [
        (1, 2, "event time reached 10.5")]


def test_event_time_too_far_from_the_first_one_names_it() -> None:
    # without a start the origin is the first event time: the row, not `start`, is named
    with pytest.raises(InvalidArgumentError) as err:
        _fire(Time(every=1e30), [-(2**63), 0, 2**63 - 1])
    assert err.value.name == "ts[2]"
    with pytest.raises(InvalidArgumentError) as err:
        _fire(Time(every=1.0), [1.0, 2.0, float("nan")])
    assert err.value.name == "ts[2]"
