"""A trigger's state as plain data: a fresh trigger that takes the JSON of another's
:meth:`~policies.Trigger.state` fires where that one fires on the rows after it; a trigger
without such a state says so (``None``) and refuses :meth:`~policies.Trigger.load_state`."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies import All, AnyOf, AtLeast, DataAmount, DataDrift, Deletion, Performance, Time, Trigger, TriggerInput


def _fire(t: Trigger, v: int, keys: np.ndarray, ts: np.ndarray) -> list[tuple[Any, ...]]:
    return [(g.version, g.position, g.seen, g.reason, g.trigger, g.boundary)
            for f in t.fire(TriggerInput(version=v, keys=keys, ts=ts)) for g in f.walk()]


@pytest.mark.parametrize("make", [lambda: DataAmount(every=3), lambda: Time(every=4, start=0),
                                  lambda: Time(every=2.5), lambda: Time(every="1s"),
                                  lambda: AtLeast(n=2, triggers=[DataAmount(every=3), Time(every=4, start=0)]),
                                  lambda: All(triggers=[AnyOf(triggers=[DataAmount(every=5)]), Time(every=3)])],
                         ids=["data_amount", "time", "time_float_no_start", "time_datetime", "at_least", "nested"])
@settings(max_examples=60, deadline=None)
@given(gaps=st.lists(st.integers(0, 3), min_size=1, max_size=30), cut=st.integers(0, 30))
def test_a_trigger_resumed_from_its_json_state_fires_as_the_one_it_came_from(make: Any, gaps: list[int],
                                                                              cut: int) -> None:
    ts = 7 + np.cumsum(np.asarray(gaps, dtype=np.int64))
    if isinstance(make(), Time) and isinstance(make().every, str):  # datetimes
        ts = ts.astype("datetime64[s]").astype("datetime64[ns]")
    cut = min(cut, ts.size)
    keys = np.arange(ts.size, dtype=np.int64)
    whole = make()
    _fire(whole, 1, keys[:cut], ts[:cut])
    resumed = make()
    resumed.load_state(json.loads(json.dumps(whole.state())))
    assert _fire(resumed, 2, keys[cut:], ts[cut:]) == _fire(whole, 2, keys[cut:], ts[cut:])
    assert resumed.state() == whole.state()


class _Counting(Trigger):
    """A user trigger that keeps no plain-data state (``state()`` is the default ``None``)."""

    def __init__(self, every: int = 3) -> None:
        self.every = every
        self._seen = 0

    def _fire(self, delta: TriggerInput, model: Any) -> list[Any]:
        self._seen += len(delta)
        return []


@pytest.mark.parametrize("t", [_Counting(), AnyOf(triggers=[DataAmount(every=3), Performance(columns=["x"]), _Counting()])],
                         ids=["user_trigger", "composite_with_a_user_trigger"])
def test_a_trigger_without_a_plain_state_refuses_one(t: Trigger) -> None:
    assert t.state() is None
    with pytest.raises(InvalidArgumentError, match="state"):
        t.load_state({"seen": 1})


@pytest.mark.parametrize(("t", "state"), [(DataAmount(every=3), {"seen": -1}), (DataAmount(every=3), {"seen": True}),
                                          (Time(every=3), {"origin": 0, "interval": 1}),
                                          (Time(every=3), {"origin": float("nan"), "interval": 1, "seen": 0}),
                                          # a valid first part, a refused second: the first is put back
                                          (AtLeast(n=1, triggers=[DataAmount(every=3), Time(every=3)]),
                                           {"parts": [{"seen": 2}, {"seen": 1}], "armed": [], "fired_at_end": False}),
                                          (AnyOf(triggers=[DataAmount(every=3)]),
                                           {"parts": [{"seen": 2}], "armed": [[3, {}]], "fired_at_end": False})])
def test_a_state_that_is_not_the_triggers_is_refused_and_changes_nothing(t: Trigger, state: dict) -> None:
    before = t.state()
    with pytest.raises(InvalidArgumentError, match="state"):
        t.load_state(state)
    assert t.state() == before


# -- data_drift: windows saved as keys, read back through a row source ------------------------
N = 900
X = np.concatenate([np.random.default_rng(0).normal(m, 1, 300) for m in (0, 2, -1)])
TS = np.arange(N, dtype=np.int64)


def _source(gone: np.ndarray, calls: list[int] | None = None) -> Any:
    """A row source over ``X`` whose keys ``gone`` were erased."""
    def rows(keys: np.ndarray, columns: Any, version: int) -> TriggerInput:
        if calls is not None:
            calls.append(version)
        k = np.asarray(keys, np.int64)
        k = k[~np.isin(k, gone)][::-1]  # in any order: the trigger puts them back in its own
        return TriggerInput(version=version, keys=k, ts=TS[k], features={c: X[k] for c in columns})
    return rows


def _drift_fire(t: Trigger, v: int, a: int, b: int, erased: Any = ()) -> list[tuple[Any, ...]]:
    tin = TriggerInput(version=v, keys=TS[a:b], ts=TS[a:b], features={"x": X[a:b]},
                       erased=np.asarray(erased, np.int64))
    return [(g.version, g.position, g.seen, g.reason, g.statistic) for f in t.fire(tin) for g in f.walk()]


DRIFTS = [lambda: DataDrift(columns=["x"], metric="ks", window=100, every=50),
          lambda: DataDrift(columns=["x"], metric="mean_shift", decision="quantile", window=80, every=40, overlap=True,
                            warmup=6, warmup_trigger={"name": "data_amount", "every": 70}),
          lambda: DataDrift(columns=["x"], metric="ks", window_time=100, every=50),
          lambda: AnyOf(triggers=[DataAmount(every=170), DataDrift(columns=["x"], metric="ks", window=60, every=30)])]


@pytest.mark.parametrize("make", DRIFTS, ids=["window", "warmup_quantile_overlap", "window_time", "composite"])
@pytest.mark.parametrize("cut", [0, 30, 150, 250, 420, 610])
def test_a_drift_trigger_resumed_after_an_erasure_fires_as_the_one_that_saw_it(make: Any, cut: int) -> None:
    # the erased rows were in the windows when the state was saved: the trigger fed on drops them
    # when fed the erasure, the resumed one never reads them back; both then fire alike
    gone = np.unique(np.clip([cut - 5, cut - 10, cut - 30, cut - 95, 3], 0, None)) if cut else np.empty(0, np.int64)
    whole = make()
    _drift_fire(whole, 1, 0, cut)
    state = json.loads(json.dumps(whole.state()))
    assert not set(_numbers(state)) & set(X.tolist())  # keys, no feature values
    calls: list[int] = []
    resumed = make()
    resumed.load_state(state, _source(gone, calls))
    assert calls == ([1] if cut else [])  # read as of the last version fed
    after = [_drift_fire(t, 2, 0, 0, gone) + _drift_fire(t, 3, cut, N) for t in (whole, resumed)]
    assert after[0] == after[1] and after[0]
    assert resumed.state() == whole.state()


def test_a_drift_state_names_the_rows_of_its_windows_by_key() -> None:
    t = DataDrift(columns=["x"], metric="ks", window=100, every=50)
    _drift_fire(t, 4, 0, 180)
    st = t.state()
    assert st["version"] == 4 and st["reference"] == list(range(100)) and st["window"] == list(range(100, 180))
    _drift_fire(t, 5, 0, 0, erased=[5, 150, 999])  # a delete or erasure takes rows out of both windows
    st = t.state()
    assert st["version"] == 5 and 5 not in st["reference"] and 150 not in st["window"]
    assert len(st["reference"]) == 99 and len(st["window"]) == 79


def test_deletion_resumed_from_its_json_state_fires_as_the_one_it_came_from() -> None:
    e = np.empty(0, dtype=np.int64)
    whole = Deletion(share=0.5)
    whole.on_training(TrainSet.uniform(np.arange(10), version=1))
    whole.fire(TriggerInput(version=2, keys=e, ts=e, erased=np.array([1, 2, 20])))
    resumed = Deletion(share=0.5)
    state = json.loads(json.dumps(whole.state()))
    assert state["train"][:2] == [10, 1] and len(state["train"][2]) == 24  # size, version, digest: no keys
    with pytest.raises(InvalidArgumentError, match="on_training"):  # the train set is told, not saved
        resumed.load_state(state)
    resumed.on_training(TrainSet.uniform(np.arange(10), version=1))
    resumed.load_state(state)
    later = TriggerInput(version=3, keys=e, ts=e, deleted=np.array([3, 4, 5]))
    got, ref = resumed.fire(later), whole.fire(later)
    assert [(f.version, f.position, f.statistic, f.seen) for f in got] == \
        [(f.version, f.position, f.statistic, f.seen) for f in ref] == [(3, 0, 0.5, 0)]
    assert resumed.state() == whole.state()


@pytest.mark.parametrize(("change", "rows", "name"), [
    ({"window": [1.5]}, _source(np.empty(0)), "state"),
    ({"evals": -1}, _source(np.empty(0)), "state"),
    ({"past": [0.1] * 51}, _source(np.empty(0)), "state"),  # more than history
    ({"newest": float("inf")}, _source(np.empty(0)), "state"),
    ({"since": None}, _source(np.empty(0)), "state"),  # None: left out
    ({"warmup_trigger": {"seen": 1}}, _source(np.empty(0)), "state"),  # it has no warm-up trigger
    ({}, None, "rows"),  # the windows' rows cannot be read back
])
def test_a_drift_state_that_is_not_the_triggers_is_refused_and_changes_nothing(change: dict[str, Any], rows: Any,
                                                                                name: str) -> None:
    other = DataDrift(columns=["x"], metric="ks", window=100, every=50)
    _drift_fire(other, 1, 0, 180)
    state = {k: v for k, v in {**other.state(), **change}.items() if v is not None or k not in change}
    t = DataDrift(columns=["x"], metric="ks", window=100, every=50)
    _drift_fire(t, 1, 0, 120)
    before = t.state()
    with pytest.raises(InvalidArgumentError, match=rf"\b{name}\b"):
        t.load_state(state, rows)
    assert t.state() == before


def test_a_deletion_state_that_is_not_the_triggers_is_refused_and_changes_nothing() -> None:
    t = Deletion(share=0.5)
    t.on_training(TrainSet.uniform(np.arange(4), version=1))
    before = t.state()
    for bad in ({**before, "removed": ["a"]}, {**before, "seen": -2}, {"train": None},
                {**before, "train": [5, 1, before["train"][2]]}, {**before, "train": [4, 2, before["train"][2]]},
                {**before, "train": [4, 1, "0" * 24]}):  # another train set of the same size and version
        with pytest.raises(InvalidArgumentError, match="state"):
            t.load_state(bad)
        assert t.state() == before


# -- performance: pending labelled rows saved as keys, read back (labels included) ---------------
PN = 600
PX = np.random.default_rng(1).normal(0, 1, PN)


def _labels() -> np.ndarray:
    """Labels the sign of ``PX`` mostly predicts (worse in rows 200..400 and from 500), a fifth
    unlabelled (-1)."""
    rng = np.random.default_rng(2)
    y = (PX > 0).astype(np.float64)
    idx = np.arange(PN)
    flip = rng.random(PN) < np.where(((idx >= 200) & (idx < 400)) | (idx >= 500), 0.4, 0.05)
    y[flip] = 1 - y[flip]
    y[rng.random(PN) < 0.2] = -1
    return y


PY = _labels()


class _Sign:
    """Predicts class 1 for x > 0."""

    def embed(self, f: Any) -> np.ndarray:
        return f["x"][:, None]

    def logits(self, f: Any) -> np.ndarray:
        return np.stack([-f["x"], f["x"]], axis=1)


def _labelled_source(gone: np.ndarray, calls: list[int] | None = None, labels: bool = True) -> Any:
    """A row source over ``PX`` and ``PY`` whose keys ``gone`` were erased."""
    def rows(keys: np.ndarray, columns: Any, version: int) -> TriggerInput:
        if calls is not None:
            calls.append(version)
        k = np.asarray(keys, np.int64)
        k = k[~np.isin(k, gone)][::-1]  # in any order: the trigger puts them back in its own
        return TriggerInput(version=version, keys=k, ts=k, labels=PY[k] if labels else None,
                            features={c: PX[k] for c in columns})
    return rows


def _perf_fire(t: Trigger, v: int, a: int, b: int, erased: Any = (), model: Any = None) -> list[tuple[Any, ...]]:
    keys = np.arange(a, b, dtype=np.int64)
    tin = TriggerInput(version=v, keys=keys, ts=keys, labels=PY[a:b], features={"x": PX[a:b]},
                       erased=np.asarray(erased, np.int64))
    return [(g.version, g.position, g.seen, g.reason, g.statistic) for f in t.fire(tin, model) for g in f.walk()]


def _numbers(data: Any) -> list[float]:
    """Every number in plain data."""
    if isinstance(data, dict):
        return [n for v in data.values() for n in _numbers(v)]
    if isinstance(data, list):
        return [n for v in data for n in _numbers(v)]
    return [data] if isinstance(data, (int, float)) and not isinstance(data, bool) else []


PERFS = [lambda: Performance(columns=["x"], every=40, threshold=0.85),
         lambda: Performance(columns=["x"], every=40, decision="rolling_average", threshold=0.05, history=3),
         lambda: Performance(columns=["x"], every=40, decision="avoidable_misclassifications", threshold=3.0),
         lambda: AnyOf(triggers=[DataAmount(every=170), Performance(columns=["x"], every=30, threshold=0.8)])]


@pytest.mark.parametrize("make", PERFS, ids=["threshold", "rolling_average", "avoidable", "composite"])
@pytest.mark.parametrize("cut", [0, 37, 250, 451])
def test_a_performance_trigger_resumed_after_an_erasure_fires_as_the_one_that_saw_it(make: Any, cut: int) -> None:
    # the erased rows were pending when the state was saved: the trigger fed on drops them when fed
    # the erasure, the resumed one never reads them back; both then evaluate the same batches
    whole = make()
    _perf_fire(whole, 1, 0, 20)  # no model yet: the bootstrap firing
    _perf_fire(whole, 2, 20, cut, model=_Sign())
    state = json.loads(json.dumps(whole.state()))
    perf = state["parts"][1] if "parts" in state else state
    assert not set(_numbers(state)) & set(PX.tolist())  # keys, no feature values
    pending = perf["pending"]
    assert pending or cut == 0
    gone = np.asarray([*pending[::3], 7, 599], np.int64)  # pending rows, and rows not pending
    calls: list[int] = []
    resumed = make()
    resumed.load_state(state, _labelled_source(gone, calls))
    assert calls == ([perf["version"]] if pending else [])  # read as of the last version fed
    after = [_perf_fire(t, 3, 0, 0, gone) + _perf_fire(t, 4, max(cut, 20), PN, model=_Sign()) for t in (whole, resumed)]
    assert after[0] == after[1] and after[0]
    assert resumed.state() == whole.state()


def test_a_performance_state_names_the_pending_rows_by_key_and_a_removal_delays_the_evaluation() -> None:
    class Wrong:  # predicts a class no row has: every evaluation fires, where its batch completes
        def logits(self, f: Any) -> np.ndarray:
            return np.tile([0.0, 0.0, 1.0], (len(f["x"]), 1))

    t = Performance(columns=["x"], every=10, threshold=0.5, bootstrap=False)
    labelled = np.flatnonzero(PY >= 0)
    end = int(labelled[14]) + 1
    got = _perf_fire(t, 1, 0, end, model=Wrong())  # 15 labelled rows: 10 evaluated, 5 pending
    assert [g[1] for g in got] == [labelled[9] + 1]
    st = t.state()
    assert st["version"] == 1 and st["pending"] == labelled[10:15].tolist() and st["seen"] == end
    # erasing two pending rows: the next evaluation comes at the 10th labelled row still live, two
    # labelled rows later than without the erasure
    _perf_fire(t, 2, 0, 0, erased=labelled[[11, 13]])
    assert t.state()["pending"] == labelled[[10, 12, 14]].tolist() and t.state()["version"] == 2
    got = _perf_fire(t, 3, end, PN, model=Wrong())
    assert got[0][1] == labelled[21] + 1 - end  # 3 pending + 7 new labelled rows (not 5)
    assert got[0][2] == labelled[21] + 1  # samples seen: every row fed, the removed ones included


def test_a_pending_row_inserted_and_erased_in_one_delta_is_not_pending() -> None:
    # keys are never reused: a row a (multi-version) delta inserts and erases is not live after it
    t = Performance(columns=["x"], every=10_000, threshold=0.5, bootstrap=False)
    labelled = np.flatnonzero(PY[:60] >= 0)
    _perf_fire(t, 3, 0, 60, erased=labelled[[2, 5]], model=_Sign())
    assert t.state()["pending"] == np.delete(labelled, [2, 5]).tolist()


def test_a_performance_state_keeps_the_past_evaluations_as_numbers() -> None:
    t = Performance(columns=["x"], every=40, decision="rolling_average", threshold=0.5, history=3)
    _perf_fire(t, 1, 0, 400, model=_Sign())
    st = t.state()
    assert len(st["past"]) == 3 and all(0 <= a <= 1 for a in st["past"])
    a = Performance(columns=["x"], every=40, decision="avoidable_misclassifications", threshold=1e9)
    _perf_fire(a, 1, 0, 400, model=_Sign())
    st = a.state()
    assert st["expect"] is not None and st["avoidable"] != 0.0 and st["bootstrapped"] is False


@pytest.mark.parametrize(("change", "rows", "name"), [
    ({"pending": [1.5]}, _labelled_source(np.empty(0)), "state"),
    ({"pending": list(range(40))}, _labelled_source(np.empty(0)), "state"),  # a full batch is never pending
    ({"pending": [3, 3]}, _labelled_source(np.empty(0)), "state"),
    ({"seen": -1}, _labelled_source(np.empty(0)), "state"),
    ({"bootstrapped": 1}, _labelled_source(np.empty(0)), "state"),
    ({"past": [0.5] * 4}, _labelled_source(np.empty(0)), "state"),  # more than history
    ({"past": [1.5]}, _labelled_source(np.empty(0)), "state"),  # not an accuracy
    ({"expect": float("nan")}, _labelled_source(np.empty(0)), "state"),
    ({"avoidable": float("inf")}, _labelled_source(np.empty(0)), "state"),
    ({"version": None}, _labelled_source(np.empty(0)), "state"),  # None: left out
    ({}, None, "rows"),  # the pending rows cannot be read back
    ({}, _labelled_source(np.empty(0), labels=False), "rows"),  # nor their labels
])
def test_a_performance_state_that_is_not_the_triggers_is_refused_and_changes_nothing(change: dict[str, Any], rows: Any,
                                                                                      name: str) -> None:
    other = Performance(columns=["x"], every=40, decision="rolling_average", threshold=0.05, history=3)
    _perf_fire(other, 1, 0, 130, model=_Sign())
    state = {k: v for k, v in {**other.state(), **change}.items() if v is not None or k not in change}
    assert state.get("pending") or name == "state"
    t = Performance(columns=["x"], every=40, decision="rolling_average", threshold=0.05, history=3)
    _perf_fire(t, 1, 0, 90, model=_Sign())
    before = t.state()
    with pytest.raises(InvalidArgumentError, match=rf"\b{name}\b"):
        t.load_state(state, rows)
    assert t.state() == before


def test_a_performance_row_inserted_and_deleted_in_one_delta_is_not_pending() -> None:
    # keys are never reused: a key a multi-version delta inserts and deletes is not live after it,
    # so the trigger fed on waits for the same rows as one resumed from its state (which reads
    # the pending rows back from the store, where that row is gone)
    labelled = np.flatnonzero(PY >= 0)
    end = int(labelled[14]) + 1
    gone = labelled[[2, 12]]  # one evaluated in this delta, one pending after it
    whole = Performance(columns=["x"], every=10, threshold=0.5, bootstrap=False)
    keys = np.arange(end, dtype=np.int64)
    whole.fire(TriggerInput(version=1, keys=keys, ts=keys, labels=PY[:end], features={"x": PX[:end]},
                            deleted=gone), _Sign())
    assert whole.state()["pending"] == labelled[[10, 11, 13, 14]].tolist()
    resumed = Performance(columns=["x"], every=10, threshold=0.5, bootstrap=False)
    resumed.load_state(json.loads(json.dumps(whole.state())), _labelled_source(gone))
    after = [_perf_fire(t, 2, end, PN, model=_Sign()) for t in (whole, resumed)]
    assert after[0] == after[1] and resumed.state() == whole.state()


def _armed_state() -> tuple[dict[str, Any], Any]:
    """An at_least(2 of 3) state with one sub-firing armed, and a maker of that composite."""
    def make() -> AtLeast:
        return AtLeast(n=2, triggers=[DataAmount(every=3), Time(every=10, start=0), DataAmount(every=5)])
    t = make()
    t.fire(TriggerInput(version=1, keys=np.arange(4), ts=np.array([1, 2, 3, 4])))
    return json.loads(json.dumps(t.state())), make


def _with(state: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(state))
    at = out
    for p in path[:-1]:
        at = at[p]
    at[path[-1]] = value
    return out


FIRING = ("armed", 0, 1)
ODD_STATES = [(("armed", 0, 0), "0"), (("armed", 0, 0), True), (("armed", 0, 0), 0.5),
              (FIRING + ("version",), True), (FIRING + ("version",), 1.7), (FIRING + ("version",), "1"),
              (FIRING + ("position",), "3"), (FIRING + ("position",), -1), (FIRING + ("reason",), 5),
              (FIRING + ("statistic",), "x"), (FIRING + ("trigger",), None), (FIRING + ("seen",), -3),
              (FIRING + ("boundary",), [1]), (FIRING + ("boundary",), ["a", 1]), (FIRING + ("extra",), 1),
              (("parts", 1), {"origin": 5, "interval": 0, "seen": 4}),      # another start's
              (("parts", 1), {"origin": None, "interval": 3, "seen": 4}),   # counted without an origin
              (("parts", 1), {"origin": 0, "interval": 2**70, "seen": 4})]


@pytest.mark.parametrize(("path", "value"), ODD_STATES, ids=[f"{p[-1]}={v!r}" for p, v in ODD_STATES])
def test_a_composite_state_with_a_field_of_another_kind_is_refused_and_changes_nothing(path: tuple[Any, ...],
                                                                                        value: Any) -> None:
    state, make = _armed_state()
    make().load_state(state)  # the state as saved is taken
    t = make()
    before = t.state()
    with pytest.raises(InvalidArgumentError, match="state"):
        t.load_state(_with(state, path, value))
    assert t.state() == before


def test_a_composite_state_of_another_composite_is_refused() -> None:
    state, make = _armed_state()
    first = state["armed"][0]
    for armed in ([first, first], [first, [1, first[1]]]):  # an index twice; as many as fire it
        with pytest.raises(InvalidArgumentError, match="state"):
            make().load_state({**state, "armed": armed})
    both = All(triggers=[DataAmount(every=3), DataAmount(every=5)])
    both.fire(TriggerInput(version=1, keys=np.arange(4), ts=np.arange(4)))
    with pytest.raises(InvalidArgumentError, match="state"):  # one armed of two: any would have fired
        AnyOf(triggers=[DataAmount(every=3), DataAmount(every=5)]).load_state(json.loads(json.dumps(both.state())))


def test_a_time_state_of_another_start_or_unit_is_refused() -> None:
    day = {"name": "time", "every": "1d", "start": "2024-01-01"}
    with pytest.raises(InvalidArgumentError, match="state"):
        Time(every="1d", start="2024-01-01").load_state({"params": day, "origin": 1.5, "interval": 0, "seen": 1})
    with pytest.raises(InvalidArgumentError, match="state"):
        Time(every="1d").load_state({"params": {**day, "start": None}, "origin": 1.5, "interval": 0, "seen": 1})
    t = Time(every="1d", start="2024-01-01")
    t.load_state({"params": day, "origin": 1704067200 * 10**9, "interval": 2, "seen": 7})
    assert t.state() == {"params": day, "origin": 1704067200 * 10**9, "interval": 2, "seen": 7}


def test_a_time_state_with_a_numeric_start_on_datetimes_is_restored() -> None:
    t = Time(every="1d", start=1.7e18)  # nanoseconds since the epoch, kept as given
    day = 86400 * 10**9
    ts = np.array([1_700_000_000_000_000_000 + day // 24, 1_700_000_000_000_000_000 + 2 * day], dtype="datetime64[ns]")
    t.fire(TriggerInput(version=1, keys=np.arange(2), ts=ts))
    saved = json.loads(json.dumps(t.state()))
    restored = Time(every="1d", start=1.7e18)
    restored.load_state(saved)
    assert restored.state() == t.state()


@pytest.mark.parametrize(("make", "change"), [
    (lambda: DataDrift(columns=["x"], metric="ks", window=100, every=20), {}),  # 30 since: past every
    (lambda: DataDrift(columns=["x"], metric="ks", window=60, every=50), {}),  # 80 keys, a window of 60
    (lambda: DataDrift(columns=["x"], metric="ks", window=100, every=50), {"since": 50}),
    (lambda: DataDrift(columns=["x"], metric="ks", window=100, every=50), {"reference": list(range(101))}),
], ids=["other_every", "shorter_window", "since_every", "long_reference"])
def test_a_drift_state_of_another_interval_or_window_is_refused(make: Any, change: dict[str, Any]) -> None:
    other = DataDrift(columns=["x"], metric="ks", window=100, every=50)
    _drift_fire(other, 1, 0, 180)
    saved = json.loads(json.dumps(other.state()))
    assert saved["since"] == 30 and len(saved["window"]) == 80
    state = {**saved, **change}
    t = make()
    before = t.state()
    with pytest.raises(InvalidArgumentError, match="state"):
        t.load_state(state, _source(np.empty(0)))
    assert t.state() == before


# -- a state records the parameters that give it meaning ----------------------------------------
def _time_input(v: int, ts: list[int]) -> TriggerInput:
    return TriggerInput(version=v, keys=np.arange(len(ts)) + 100 * v, ts=np.asarray(ts, np.int64))


@pytest.mark.parametrize(("saver", "taker", "name"), [
    (lambda: Time(every=10), lambda: Time(every=3), "every"),
    (lambda: Time(every=10), lambda: Time(every=10, start=0), "start"),
    (lambda: Time(every=10, start=0), lambda: Time(every=10), "start"),
    (lambda: DataAmount(every=3), lambda: DataAmount(every=5), "every"),
    (lambda: AtLeast(n=2, triggers=[DataAmount(every=3), Time(every=4)]),
     lambda: AtLeast(n=1, triggers=[DataAmount(every=3), Time(every=4)]), "n"),
    (lambda: AnyOf(triggers=[DataAmount(every=3)]), lambda: All(triggers=[DataAmount(every=3)]), "name"),
])
def test_a_state_saved_with_other_parameters_is_refused_naming_the_parameter(saver: Any, taker: Any,
                                                                              name: str) -> None:
    # Time(every=3) resumed from Time(every=10)'s interval index 1 fired at boundaries of neither
    saved = saver()
    saved.fire(_time_input(1, [0, 5, 12]))
    state = json.loads(json.dumps(saved.state()))
    t = taker()
    before = t.state()
    with pytest.raises(InvalidArgumentError) as err:
        t.load_state(state)
    assert err.value.name == f"state.params.{name}"
    assert t.state() == before


def test_a_composite_names_the_sub_trigger_whose_parameters_differ_and_keeps_its_parts() -> None:
    saved = AtLeast(n=2, triggers=[DataAmount(every=3), Time(every=10)])
    saved.fire(_time_input(1, [0, 5, 12]))
    t = AtLeast(n=2, triggers=[DataAmount(every=3), Time(every=4)])
    t.fire(_time_input(1, [1, 2]))
    before = t.state()
    with pytest.raises(InvalidArgumentError) as err:
        t.load_state(json.loads(json.dumps(saved.state())))
    assert err.value.name == "state.parts[1].params.every" and "every=4" in str(err.value)
    assert t.state() == before


@pytest.mark.parametrize(("make", "key"), [
    (lambda: Performance(columns=["x"], every=10), {"every": 12}),
    (lambda: Performance(columns=["x"], every=10, decision="avoidable_misclassifications", threshold=2.0),
     {"expected": 0.9}),
    (lambda: DataDrift(columns=["x"], metric="ks", window=100, every=50), {"window": 80}),
    (lambda: DataDrift(columns=["x"], metric="ks", window_time=100, every=50), {"window_time": 50}),
])
def test_a_performance_or_drift_state_of_other_parameters_is_refused(make: Any, key: dict) -> None:
    state = json.loads(json.dumps(make().state()))
    other = type(make()).from_config({**make().to_config(), **key})
    with pytest.raises(InvalidArgumentError) as err:
        other.load_state(state)
    assert err.value.name == f"state.params.{next(iter(key))}"
    make().load_state(state)  # the trigger of the same parameters takes it


@pytest.mark.parametrize("make", [lambda: Time(every=10), lambda: Performance(columns=["x"], every=10),
                                  lambda: DataDrift(columns=["x"], metric="ks", window=100, every=50),
                                  lambda: AnyOf(triggers=[DataAmount(every=3)])],
                         ids=["time", "performance", "data_drift", "composite"])
def test_a_state_without_its_parameters_is_refused(make: Any) -> None:
    # nothing tells it from the state of a trigger with another interval, window or batch size
    state = {k: v for k, v in make().state().items() if k != "params"}
    t = make()
    before = t.state()
    with pytest.raises(InvalidArgumentError) as err:
        t.load_state(state)
    assert err.value.name == "state.params" and t.state() == before


def test_a_data_amount_state_without_parameters_is_taken() -> None:
    # the samples seen mean the same for any interval: firings are at multiples of every
    t = DataAmount(every=3)
    t.load_state({"seen": 5})
    assert [f.position for f in t.fire(_time_input(1, [0, 1, 2, 3]))] == [1, 4]
    assert t.state() == {"params": {"name": "data_amount", "every": 3}, "seen": 9}
