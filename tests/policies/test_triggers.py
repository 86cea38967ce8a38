"""Exact firing positions of the amount, time, composite, deletion and performance triggers.

A firing's cutoff ``(version, position)`` includes the first ``position`` rows of ``version``'s
delta (rows in (ts, key) order) and every row of earlier versions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_testkit import ThresholdModel, delta

from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies import (
    All,
    AnyOf,
    AtLeast,
    DataAmount,
    Deletion,
    Performance,
    Time,
    TriggerInput,
)


def feed(trigger, sizes, start_version=1, **kw):  # type: ignore[no-untyped-def]
    """Feed deltas of the given sizes (keys and ts = global sample index)."""
    out, k = [], 0
    for i, n in enumerate(sizes):
        keys = np.arange(k, k + n)
        out += trigger.fire(delta(start_version + i, keys, **kw))
        k += n
    return out


def global_to_cutoff(sizes, end, start_version=1):  # type: ignore[no-untyped-def]
    """Plain reference: the (version, position) of 'the first `end` samples overall'."""
    before = 0
    for i, n in enumerate(sizes):
        if end <= before + n and n:
            return start_version + i, end - before
        before += n
    raise AssertionError("end beyond the stream")


def test_data_amount_every_3_over_deltas_of_2() -> None:
    fs = feed(DataAmount(every=3), [2, 2, 2])
    # sample 3 is the 1st row of version 2; sample 6 the 2nd (last) row of version 3
    assert [(f.version, f.position, f.seen) for f in fs] == [(2, 1, 3), (3, 2, 6)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=8), st.integers(1, 7))
def test_data_amount_matches_reference(sizes: list[int], every: int) -> None:
    fs = feed(DataAmount(every=every), sizes)
    total = sum(sizes)
    expected = [global_to_cutoff(sizes, e) for e in range(every, total + 1, every)]
    assert [(f.version, f.position) for f in fs] == expected
    assert [f.seen for f in fs] == list(range(every, total + 1, every))


def test_time_numeric_boundaries_across_versions() -> None:
    t = Time(every=10, start=0)
    out = []
    for v, ts in enumerate([[1, 5], [9, 10, 11], [35, 36], [39, 40], [38, 41]], start=1):
        out += t.fire(delta(v, np.arange(len(ts)) + 10 * v, ts=np.array(ts)))
    # 10 is reached by row 1 of v2; 35 passes 20 and 30 at once (one firing, row 0 of v3);
    # 40 is reached by row 1 of v4; the late 38 and 41 < 50 do not fire.
    assert [(f.version, f.position) for f in out] == [(2, 1), (3, 0), (4, 1)]
    assert [f.statistic for f in out] == [10.0, 30.0, 40.0]


def test_time_default_start_is_first_event() -> None:
    out = feed(Time(every=4), [3, 3, 3])  # ts = 0..8: boundaries 4 and 8
    assert [(f.version, f.position) for f in out] == [(2, 1), (3, 2)]


def test_time_on_datetimes() -> None:
    base = np.datetime64("2024-03-01T00:00", "ns")
    hours = np.array([1, 20, 23, 25, 47, 49, 80], dtype="timedelta64[h]")
    ts = base + hours
    t = Time(every="1d", start="2024-03-01")
    a = t.fire(TriggerInput(version=1, keys=np.arange(4), ts=ts[:4]))
    b = t.fire(TriggerInput(version=2, keys=np.arange(4, 7), ts=ts[4:]))
    # day 2 starts at row 3 of v1 (25h); day 3 at row 1 of v2 (49h); day 4 at row 2 (80h)
    assert [(f.version, f.position) for f in a + b] == [(1, 3), (2, 1), (2, 2)]


def test_time_on_integer_nanoseconds_is_exact() -> None:
    """Integer event times of nanoseconds since the epoch (an int64 column, not a datetime one)
    are 256 apart as float64: the boundaries are found in int64, from the start's whole part."""
    base = 1_700_000_000_000_000_001  # not a float64 value
    ts = base + np.arange(5000)
    keys = np.arange(5000)
    for t, first in [(Time(every=1000), base), (Time(every=1000, start=base), base),
                     (Time(every=1000.0, start=float(base)), int(float(base)))]:
        fs = t.fire(TriggerInput(version=1, keys=keys, ts=ts))
        bounds = [first + 1000 * j for j in range(1, 6) if first + 1000 * j <= ts[-1]]
        # each firing is the first row at or past its boundary, named exactly
        assert [f.position for f in fs] == [int(np.searchsorted(ts, b)) for b in bounds]
        assert [f.reason for f in fs] == [f"event time reached {b}" for b in bounds]
    # a fractional interval divides the exact differences from the start in float64
    fs = Time(every=999.5).fire(TriggerInput(version=1, keys=keys, ts=ts))
    assert [f.position for f in fs] == [math.ceil(999.5 * j) for j in range(1, 6)]  # 1000, 1999, 2999, ...
    # split over versions, the same rows fire (the whole-delta shortcut compares exactly too)
    t = Time(every=1000)
    split = [f for v, (lo, hi) in enumerate([(0, 999), (999, 1001), (1001, 5000)], start=1)
             for f in t.fire(TriggerInput(version=v, keys=keys[lo:hi], ts=ts[lo:hi]))]
    assert [(f.version, f.position) for f in split] == [(2, 1), (3, 999), (3, 1999), (3, 2999)]


def test_time_with_a_fractional_start_on_integer_times_is_exact() -> None:
    """A fractional start between two integer event times: an integer time reaches
    ``start + j * every`` when it reaches the next integer, found in int64 however far the
    event times lie from the start (as float64, times near 10**18 are 128 apart)."""
    base = 10**18 + 7
    ts = base + np.arange(5000)
    fs = Time(every=1000, start=0.5).fire(TriggerInput(version=1, keys=np.arange(5000), ts=ts))
    # boundaries 0.5 + 1000 j: the first row is past many of them (one firing), then every
    # row whose time is 1 + 1000 j
    firsts = [0] + [int(p) for p in np.flatnonzero(ts % 1000 == 1)]
    assert [f.position for f in fs] == firsts
    assert fs[1].reason == f"event time reached {int(ts[firsts[1]]) - 1}.5"
    # the small case agrees with the documented rule, on int and float columns alike
    for col in (np.array([1, 10, 11, 25]), np.array([1.0, 10.0, 11.0, 25.0])):
        got = Time(every=10, start=0.5).fire(TriggerInput(version=1, keys=np.arange(4), ts=col))
        assert [(f.position, f.reason) for f in got] == [(2, "event time reached 10.5"),
                                                          (3, "event time reached 20.5")]


def test_time_unit_mismatch_is_an_error() -> None:
    with pytest.raises(InvalidArgumentError, match="every"):
        Time(every="1d").fire(delta(1, np.arange(3)))
    with pytest.raises(InvalidArgumentError, match="every"):
        Time(every="soon")


def test_at_least_two_of_three() -> None:
    t = AtLeast(n=2, triggers=[DataAmount(every=4), DataAmount(every=5), Time(every=7, start=0)])
    out = feed(t, [6, 6, 6])  # ts = 0..17
    # sub-firings (global end): A at 4, 8, 12, 16; B at 5, 10, 15; T at 7 and 14 (row ts 7/14)
    # armed: A4, B5 -> fire at 5 | T7, A8 -> fire at 8 | B10, A12 -> 12 | T14, B15 -> 15
    ends = [5, 8, 12, 15]
    assert [(f.version, f.position) for f in out] == [global_to_cutoff([6, 6, 6], e) for e in ends]
    assert [sorted(c.trigger for c in f.causes) for f in out] == [
        ["data_amount", "data_amount"], ["data_amount", "time"],
        ["data_amount", "data_amount"], ["data_amount", "time"]]


def test_any_and_all() -> None:
    sizes = [5, 5, 5]
    any_out = feed(AnyOf(triggers=[DataAmount(every=4), DataAmount(every=6)]), sizes)
    ends = sorted(set(range(4, 16, 4)) | set(range(6, 16, 6)))
    assert [(f.version, f.position) for f in any_out] == [global_to_cutoff(sizes, e) for e in ends]
    all_out = feed(All(triggers=[DataAmount(every=4), DataAmount(every=6)]), sizes)
    # A at 4, 8, 12; B at 6, 12: both armed at 6 -> fire; A8 then both at 12 -> fire
    assert [(f.version, f.position) for f in all_out] == [global_to_cutoff(sizes, e)
                                                          for e in (6, 12)]


def test_firing_keys_after_and_multi_version_delta() -> None:
    d = TriggerInput(version=3, keys=np.arange(10, 16), ts=np.arange(6),
                     versions=np.array([2, 2, 3, 3, 3, 3]))
    fs = DataAmount(every=3).fire(d)
    assert [(f.version, f.position) for f in fs] == [(3, 1), (3, 4)]
    assert d.keys_after(fs[0]).tolist() == [13, 14, 15]
    assert d.keys_after(fs[1]).tolist() == []


def test_deletion_share_of_last_train_set() -> None:
    t = Deletion(share=0.25)
    e = np.empty(0, dtype=np.int64)
    assert t.fire(delta(1, e, deleted=np.arange(100))) == []  # no train set yet
    t.on_training(TrainSet.uniform(np.arange(10, 30), version=1))  # 20 keys
    assert t.fire(delta(2, np.array([50, 51]), deleted=np.array([10, 11, 99]))) == []  # 2/20
    fs = t.fire(delta(3, np.array([52]), erased=np.array([11, 12, 13, 40])))  # +12, 13 -> 4/20
    assert len(fs) == 0
    fs = t.fire(delta(4, np.array([53, 54]), erased=np.array([14])))  # 5/20 = 0.25
    assert [(f.version, f.position, f.statistic) for f in fs] == [(4, 2, 0.25)]
    assert t.fire(delta(5, e, deleted=np.arange(15, 30))) == []  # quiet until the next training


def test_performance_threshold_and_bootstrap() -> None:
    x = np.array([1, 1, 1, 1, 1, -1, -1, 1, -1, -1, -1, -1], dtype=float)
    y = np.ones(12, dtype=np.int64)  # accuracies of the 4-sample windows: 1.0, 0.5, 0.0
    t = Performance(columns=["x"], every=4, threshold=0.6)
    fs = t.fire(delta(1, np.arange(6), labels=y[:6], x=x[:6]), model=None)
    assert [(f.position, f.reason) for f in fs] == [(4, "no model yet")]
    fs = t.fire(delta(2, np.arange(6, 12), labels=y[6:], x=x[6:]), model=ThresholdModel())
    assert [(f.version, f.position, f.statistic) for f in fs] == [(2, 2, 0.5), (2, 6, 0.0)]


@pytest.mark.parametrize(("every", "right"), [(10, 2), (5, 1), (10, 1), (11, 9)])
def test_performance_accuracy_exactly_at_the_threshold_does_not_fire(every: int, right: int) -> None:
    # right / every equals the threshold: not below it (1 - wrong / every fell an ulp under)
    x = np.where(np.arange(every) < right, 1.0, -1.0)
    y = np.ones(every, dtype=np.int64)
    t = Performance(columns=["x"], every=every, threshold=right / every)
    assert t.fire(delta(1, np.arange(every), labels=y, x=x), model=ThresholdModel()) == []
    t = Performance(columns=["x"], every=every, threshold=right / every + 1e-9)
    fs = t.fire(delta(1, np.arange(every), labels=y, x=x), model=ThresholdModel())
    assert [f.statistic for f in fs] == [right / every]


def test_performance_skips_unlabelled_rows() -> None:
    x = np.ones(8)
    y = np.array([1, -1, 0, -1, 0, 1, 0, 0])  # -1: unlabelled
    t = Performance(columns=["x"], every=3, threshold=0.5, bootstrap=False)
    fs = t.fire(delta(1, np.arange(8), labels=y, x=x), model=ThresholdModel())
    # labelled rows 0, 2, 4 -> acc 1/3 fires at position 5; rows 5, 6, 7 -> 1/3 at 8
    assert [(f.position, round(f.statistic, 4)) for f in fs] == [(5, 0.3333), (8, 0.3333)]


def test_performance_rolling_average() -> None:
    accs = [1.0, 0.75, 1.0, 0.25, 0.75]
    x = np.concatenate([np.where(np.arange(4) < a * 4, 1.0, -1.0) for a in accs])
    y = np.ones(x.size, dtype=np.int64)
    t = Performance(columns=["x"], every=4, decision="rolling_average", threshold=0.3)
    fs = t.fire(delta(1, np.arange(x.size), labels=y, x=x), model=ThresholdModel())
    # means of the past: -, 1.0, 0.875, 0.9167, 0.75 -> only 0.25 < 0.9167 - 0.3 fires
    assert [(f.position, f.statistic) for f in fs] == [(16, 0.25)]


@pytest.mark.parametrize(("first", "then", "threshold"), [(9, 6, 0.3), (4, 1, 0.3), (8, 6, 0.2), (4, 3, 0.1),
                                                          (8, 3, 0.5), (7, 4, 0.3)])
def test_performance_rolling_average_exactly_at_the_mean_less_threshold_does_not_fire(
        first: int, then: int, threshold: float) -> None:
    # an accuracy of then/10 after one of first/10 is at the mean less the threshold in decimals
    # (0.9 - 0.3 is 0.6), not below it (float64 gives 0.6000000000000001): the threshold decision
    # is exact at its threshold, this one at its boundary
    x = np.concatenate([np.where(np.arange(10) < r, 1.0, -1.0) for r in (first, then)])
    y = np.ones(x.size, dtype=np.int64)
    t = Performance(columns=["x"], every=10, decision="rolling_average", threshold=threshold)
    assert t.fire(delta(1, np.arange(x.size), labels=y, x=x), model=ThresholdModel()) == []
    # one row fewer right is below it: fires
    x = np.concatenate([np.where(np.arange(10) < r, 1.0, -1.0) for r in (first, then - 1)])
    t = Performance(columns=["x"], every=10, decision="rolling_average", threshold=threshold)
    fs = t.fire(delta(1, np.arange(x.size), labels=y, x=x), model=ThresholdModel())
    assert [(f.position, f.statistic) for f in fs] == [(20, (then - 1) / 10)]


def test_performance_avoidable_misclassifications() -> None:
    accs = [0.75, 0.75, 0.5, 0.5, 0.25]  # expected 0.75 from the first window
    x = np.concatenate([np.where(np.arange(4) < a * 4, 1.0, -1.0) for a in accs])
    y = np.ones(x.size, dtype=np.int64)
    t = Performance(columns=["x"], every=4, decision="avoidable_misclassifications",
                    threshold=1.5)
    fs = t.fire(delta(1, np.arange(x.size), labels=y, x=x), model=ThresholdModel())
    # avoidable per window: 0, 1, 1 (cum 2 > 1.5: fire, reset), then 2 (> 1.5: fire)
    assert [(f.position, f.statistic) for f in fs] == [(16, 2.0), (20, 2.0)]


@pytest.mark.parametrize(("every", "right", "expected"), [(10, 9, None), (5, 4, None), (22, 15, None),
                                                         (10, 9, 0.9), (3, 2, None)])
def test_performance_as_many_misses_as_expected_are_not_avoidable(every: int, right: int,
                                                                  expected: float | None) -> None:
    # every window misses exactly the expected count: nothing is avoidable, threshold 0 never fires
    x = np.tile(np.where(np.arange(every) < right, 1.0, -1.0), 4)
    y = np.ones(x.size, dtype=np.int64)
    t = Performance(columns=["x"], every=every, decision="avoidable_misclassifications",
                    threshold=0.0, expected=expected)
    assert t.fire(delta(1, np.arange(x.size), labels=y, x=x), model=ThresholdModel()) == []
    assert t.state()["avoidable"] == 0.0


def _global_ends(trigger, x, ts, cuts):  # type: ignore[no-untyped-def]
    """Feed the stream split at ``cuts``; return each firing's global end (rows before it)."""
    bounds = [0, *sorted(set(cuts)), len(x)]
    out = []
    for v, (a, b) in enumerate(zip(bounds, bounds[1:]), start=1):
        d = TriggerInput(version=v, keys=np.arange(a, b), ts=ts[a:b], labels=(x[a:b] > 0).astype(int),
                         features={"x": x[a:b]})
        out += [a + f.position for f in trigger.fire(d, ThresholdModel(cut=0.5))]
    return out


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 299), max_size=12))
def test_firings_do_not_depend_on_how_the_stream_is_split(cuts: list[int]) -> None:
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(0, 1, 150), rng.normal(2, 1, 150)])
    ts = np.cumsum(rng.integers(0, 3, 300))
    for make in (lambda: DataAmount(every=13), lambda: Time(every=17, start=0),
                 lambda: AtLeast(n=2, triggers=[DataAmount(every=11), Time(every=23),
                                                Performance(columns=["x"], every=20,
                                                            threshold=0.7)])):
        assert _global_ends(make(), x, ts, cuts) == _global_ends(make(), x, ts, [])


def _time_reference(ts: np.ndarray, every: float, origin: float) -> list[int]:
    """The documented rule, one sample at a time: fire at the first sample whose event time
    reaches a boundary past the current interval (late samples count into the current one)."""
    interval, ends = 0, []
    for i, t in enumerate(ts.tolist()):
        k = math.floor((t - origin) / every)
        if k > interval:
            ends.append(i)
            interval = k
    return ends


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 399), max_size=15), st.integers(0, 3), st.sampled_from([0.7, 5.0, 40.0]))
def test_time_firings_equal_the_one_sample_rule(cuts: list[int], seed: int, every: float) -> None:
    # in-order stretches (where whole deltas skip the per-sample pass), ties, late samples, gaps
    rng = np.random.default_rng(seed)
    steps = rng.choice([0.0, 0.25, 1.0, 30.0], 400, p=[0.3, 0.4, 0.28, 0.02])
    ts = np.cumsum(steps)
    late = rng.random(400) < (0.05 if seed % 2 else 0.0)
    ts[late] -= rng.uniform(0, 20, int(late.sum()))
    expected = [i for i in _time_reference(ts, every, 0.0)]
    # a late sample is one of a later version than the rows before it (within a version rows
    # are in event-time order): each row its own version, deltas split at ``cuts``
    bounds = [0, *sorted(set(cuts)), ts.size]
    t, ends = Time(every=every, start=0), []
    for a, b in zip(bounds, bounds[1:]):
        rows = np.arange(a, b)
        d = TriggerInput(version=b, keys=rows, ts=ts[a:b], versions=rows + 1)
        ends += [f.version - 1 + f.position for f in t.fire(d)]
    assert ends == expected


@pytest.mark.parametrize("decision", ["threshold", "rolling_average"])
def test_performance_refuses_an_expected_accuracy_its_decision_would_ignore(decision: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        Performance(columns=["x"], decision=decision, expected=0.9)
    assert err.value.name == "expected" and "avoidable_misclassifications" in str(err.value)
    assert Performance(columns=["x"], decision="avoidable_misclassifications", expected=0.9, threshold=2.0).expected == 0.9
