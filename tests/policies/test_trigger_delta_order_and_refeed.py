"""A trigger reads each version's rows once, in ``(version, ts, key)`` order (the store's).

Rows in another order gave firings whose position named other rows than their cutoff (a time
trigger fired at position 0 while its cutoff held rows before the boundary; an amount trigger's
cutoff after "2 rows" held one), and a drift window of other rows. A delta given again was
counted again (an amount trigger fired after 3 rows when 2 had been inserted). Both are now
refused with an :class:`InvalidArgumentError` naming the argument, before the trigger's state
changes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies import (AnyOf, AtLeast, DataAmount, DataDrift, Deletion, Performance, Time, Trigger,
                      TriggerInput)

_E = np.empty(0, dtype=np.int64)


class _Sign:
    def embed(self, f):  # type: ignore[no-untyped-def]
        return f["x"][:, None]

    def logits(self, f):  # type: ignore[no-untyped-def]
        return np.stack([-f["x"], f["x"]], axis=1)


def _rows(version: int, keys: Any, ts: Any, **kw: Any) -> TriggerInput:
    keys = np.asarray(keys)
    return TriggerInput(version=version, keys=keys, ts=np.asarray(ts), labels=np.ones(keys.size, np.int64),
                        features={"x": np.linspace(-1, 1, keys.size)}, **kw)


# -- order ---------------------------------------------------------------------------------------

def test_time_refuses_rows_out_of_event_time_order_and_stays_as_it_was() -> None:
    t = Time(every=10, start=0)
    with pytest.raises(InvalidArgumentError) as err:  # fired at position 0, its cutoff held keys 1, 2
        t.fire(_rows(1, [0, 1, 2, 3], [12, 1, 9, 25]))
    assert err.value.name == "delta.ts[1]" and err.value.value == 1
    assert "(version, ts, key) order" in str(err.value) and "row 0 (ts=12, key=0)" in str(err.value)
    assert t.state() == Time(every=10, start=0).state()
    d = _rows(1, [1, 2, 0, 3], [1, 9, 12, 25])
    fs = t.fire(d)
    assert [(f.version, f.position) for f in fs] == [(1, 2), (1, 3)]
    inside = fs[0].cutoff.includes(d.versions, d.ts, d.keys)  # type: ignore[arg-type]
    assert d.keys[inside].tolist() == [1, 2] and d.keys_after(fs[0]).tolist() == [0, 3]


def test_amount_refuses_keys_out_of_order_at_one_event_time() -> None:
    t = DataAmount(every=2)
    with pytest.raises(InvalidArgumentError) as err:  # its cutoff after "2 rows" held one row
        t.fire(_rows(1, [4, 3, 2, 1], [5, 5, 5, 5]))
    assert err.value.name == "delta.keys[1]" and err.value.value == 3
    assert t.state()["seen"] == 0


def test_a_row_given_twice_in_one_version_is_refused() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        DataAmount(every=2).fire(_rows(1, [1, 2, 2], [5, 6, 6]))
    assert err.value.name == "delta.keys[2]" and "each row once" in str(err.value)


def test_drift_refuses_rows_out_of_order_before_building_a_window() -> None:
    rng = np.random.default_rng(0)
    perm = rng.permutation(80)
    x = rng.normal(0, 1, 80)
    t = DataDrift(columns=["x"], window_time=20, every=10, min_samples=5)
    with pytest.raises(InvalidArgumentError) as err:  # its reference window held 7 rows, not 20
        t.fire(TriggerInput(version=1, keys=perm, ts=perm, features={"x": x[perm]}))
    assert err.value.name.startswith("delta.ts[")
    t.fire(TriggerInput(version=1, keys=np.arange(80), ts=np.arange(80), features={"x": x}))
    assert t._ref_keys.tolist() == list(range(20))


def test_a_composite_refuses_disordered_rows_before_any_part_consumes_them() -> None:
    t = AnyOf(triggers=[DataAmount(every=3), Time(every=100, start=0)])
    with pytest.raises(InvalidArgumentError):
        t.fire(_rows(1, [0, 1, 2], [3, 2, 1]))
    assert [p.state() for p in t.triggers] == [DataAmount(every=3).state(), Time(every=100, start=0).state()]
    assert t.fire(_rows(1, [0, 1, 2], [1, 2, 3]))[0].position == 3


def test_late_rows_of_a_later_version_and_nan_event_times_last_are_in_order() -> None:
    # event time may go back from one version to the next (late data); a NaN sorts last, as in
    # the store's delta
    d = TriggerInput(version=3, keys=np.array([5, 9, 1, 0, 2]), ts=np.array([4.0, 8.0, 1.0, np.nan, np.nan]),
                     versions=np.array([2, 2, 3, 3, 3]))
    assert [(f.version, f.position) for f in DataAmount(every=2).fire(d)] == [(2, 2), (3, 2)]
    with pytest.raises(InvalidArgumentError) as err:  # a NaN before a number of its version
        DataAmount(every=2).fire(TriggerInput(version=1, keys=np.array([1, 2]), ts=np.array([np.nan, 1.0])))
    assert err.value.name == "delta.ts[1]"


def test_a_store_delta_with_late_rows_is_taken() -> None:
    store = Store.open(f"memory://order-{uuid.uuid4().hex}", create=True)
    store.append(pa.table({"ts": np.array([30, 10, 20])}))  # v1, written out of order
    store.append(pa.table({"ts": np.array([5, 25])}))  # v2, late rows
    t = Time(every=15, start=0)
    assert [(f.version, f.position) for f in t.fire(store.delta(0, 2, labels=False))] == [(1, 1), (1, 2)]


# -- a delta fed again ---------------------------------------------------------------------------

def _deletion() -> Deletion:
    t = Deletion(share=0.5)
    t.on_training(TrainSet.uniform(np.array([100, 101, 102, 103]), version=0))
    return t


_MAKERS: list[Callable[[], Trigger]] = [
    lambda: DataAmount(every=3),
    lambda: Time(every=10, start=0),
    _deletion,
    lambda: Performance(columns=["x"], every=2, threshold=0.1),
    lambda: DataDrift(columns=["x"], window=2, every=2, min_samples=2),
    lambda: AnyOf(triggers=[DataAmount(every=3), Time(every=100, start=0)]),
    lambda: AtLeast(n=2, triggers=[DataAmount(every=3), Deletion(share=0.5)]),
]


@pytest.mark.parametrize("make", _MAKERS)
def test_the_same_delta_fed_again_is_refused_and_leaves_the_trigger_as_it_was(make) -> None:  # type: ignore[no-untyped-def]
    t, ref = make(), make()
    d1 = _rows(1, [0, 1], [1, 15], deleted=np.array([100]))
    for tr in (t, ref):
        tr.fire(d1, model=_Sign())
    with pytest.raises(InvalidArgumentError) as err:
        t.fire(d1, model=_Sign())
    assert err.value.name == "delta.version" and err.value.value == 1
    assert "after 1" in str(err.value) and "covers versions 1" in str(err.value)
    assert t.state() == ref.state()
    d2 = _rows(2, [2, 3, 4, 5], [16, 17, 25, 31], deleted=np.array([101]))
    assert [(f.version, f.position, f.seen) for f in t.fire(d2, model=_Sign())] == \
        [(f.version, f.position, f.seen) for f in ref.fire(d2, model=_Sign())]


def test_amount_counted_a_delta_fed_again() -> None:
    t = DataAmount(every=3)
    d = _rows(1, [0, 1], [0, 1])
    assert t.fire(d) == []
    with pytest.raises(InvalidArgumentError):  # fired "after 3 samples" with 2 inserted
        t.fire(d)
    assert t.state()["seen"] == 2


def test_a_delta_overlapping_the_versions_fed_is_refused() -> None:
    t = DataAmount(every=3)
    t.fire(TriggerInput(version=3, keys=np.arange(3), ts=np.arange(3), versions=np.array([1, 2, 3])))
    with pytest.raises(InvalidArgumentError) as err:  # versions (2, 4]: version 3 again
        t.fire(TriggerInput(version=4, keys=np.arange(3, 5), ts=np.arange(2), versions=np.array([3, 4])))
    assert err.value.name == "delta.version" and "after 3" in str(err.value) and "3..4" in str(err.value)
    with pytest.raises(InvalidArgumentError):  # an older version
        t.fire(TriggerInput(version=2, keys=_E, ts=_E))
    assert t.state()["seen"] == 3
    assert [(f.version, f.position) for f in t.fire(_rows(4, [9, 10, 11], [0, 1, 2]))] == [(4, 3)]


def test_removals_fed_again_are_refused_an_empty_delta_at_the_last_version_is_no_change() -> None:
    t = _deletion()
    t.fire(TriggerInput(version=2, keys=_E, ts=_E, deleted=np.array([100])))
    before = t.state()
    with pytest.raises(InvalidArgumentError):
        t.fire(TriggerInput(version=2, keys=_E, ts=_E, deleted=np.array([100])))
    assert t.fire(TriggerInput(version=2, keys=_E, ts=_E)) == [] and t.state() == before
    assert [f.statistic for f in t.fire(TriggerInput(version=3, keys=_E, ts=_E, erased=np.array([101])))] == [0.5]


def test_a_store_delta_fed_again_is_refused() -> None:
    store = Store.open(f"memory://refeed-{uuid.uuid4().hex}", create=True)
    store.append(pa.table({"ts": np.arange(2)}))
    t = DataAmount(every=3)
    t.fire(store.delta(0, 1, labels=False))
    with pytest.raises(InvalidArgumentError):
        t.fire(store.delta(0, 1, labels=False))
    store.append(pa.table({"ts": np.arange(2, 4)}))
    assert [(f.version, f.position, f.seen) for f in t.fire(store.delta(1, 2, labels=False))] == [(2, 1, 3)]


def test_a_composite_whose_later_part_refuses_a_delta_leaves_every_part_as_it_was() -> None:
    # the first part consumed the delta the second refused: fed again, it counted it twice
    t = AnyOf(triggers=[DataAmount(every=3), AtLeast(n=1, triggers=[DataAmount(every=2), Time(every="1d")])])
    with pytest.raises(InvalidArgumentError) as err:
        t.fire(_rows(1, [0, 1], [0, 1]))  # numeric event times for a "1d" interval
    assert err.value.name == "every"
    inner = t.triggers[1]
    assert isinstance(inner, AtLeast)
    assert (t.triggers[0].state() or {})["seen"] == 0 and (inner.triggers[0].state() or {})["seen"] == 0
    days = np.array(["2024-01-01", "2024-01-01T12", "2024-01-02T01"], dtype="datetime64[ns]")
    fs = t.fire(TriggerInput(version=1, keys=np.arange(3), ts=days))
    assert [(f.version, f.position, f.seen) for f in fs] == [(1, 2, 2), (1, 3, 3)]
    assert (t.triggers[0].state() or {})["seen"] == 3


def _walk(t: Any) -> list[Any]:
    return [t, *(q for p in t._parts() for q in _walk(p))]


@pytest.mark.parametrize("warmup", ["data_amount", "any_of"])
def test_a_composite_refused_by_a_part_leaves_a_drift_with_a_warmup_part_as_it_was(warmup: str) -> None:
    """A part fed a later version elsewhere refuses the delta: it is refused before any part
    counts it, also the warm-up part of a drift trigger inside the composite (its buffer and
    pending firings untouched, the same objects in place), and the composite's state unchanged."""
    import json

    from policies import AnyOf, DataAmount, DataDrift

    rng = np.random.default_rng(0)

    def delta(v: int, n: int, start: int) -> TriggerInput:
        k = np.arange(start, start + n)
        return TriggerInput(version=v, keys=k, ts=k, labels=(rng.random(n) > 0.5).astype(np.int64),
                            features={"x": rng.normal(size=n)})

    part = DataAmount(every=4) if warmup == "data_amount" else AnyOf(triggers=[DataAmount(every=4), DataAmount(every=6)])
    drift = DataDrift(columns=["x"], window=20, every=10, min_samples=5, warmup=1000, warmup_trigger=part)
    blocker = DataAmount(every=1000)
    blocker.fire(delta(5, 3, 10_000))
    comp = AnyOf(triggers=[drift, blocker])
    objects = [id(t) for t in _walk(comp)]
    before = json.dumps(comp.state(), sort_keys=True, default=str)
    with pytest.raises(InvalidArgumentError, match="delta.version"):
        comp.fire(delta(1, 15, 0))
    assert [id(t) for t in _walk(comp)] == objects
    assert json.dumps(comp.state(), sort_keys=True, default=str) == before


class _Flaky:
    """A model whose first ``fails`` calls raise (a transient failure), then a fixed sign rule."""

    def __init__(self, fails: int) -> None:
        self.fails = fails

    def _ok(self) -> None:
        if self.fails:
            self.fails -= 1
            raise RuntimeError("transient model failure")

    def logits(self, f: Any) -> np.ndarray:
        self._ok()
        return np.stack([-f["x"], f["x"]], axis=1)

    def embed(self, f: Any) -> np.ndarray:
        self._ok()
        return f["x"][:, None]


def _labelled(v: int, n: int) -> TriggerInput:
    k = np.arange(n) + 100 * v
    return TriggerInput(version=v, keys=k, ts=k, labels=np.ones(n, dtype=np.int64),
                        features={"x": np.linspace(-1, 1, n)})


@pytest.mark.parametrize("build", ["composite", "drift_with_warmup"])
def test_a_part_failing_while_firing_leaves_the_parts_before_it_as_they_were(build: str) -> None:
    """A part whose model fails after the parts before it fired: the delta fed again (the model
    back) gives what a trigger fed it once gives, not a refusal of versions fed before."""
    from policies import AnyOf, DataAmount, DataDrift, Performance

    def make() -> Trigger:
        if build == "composite":
            return AnyOf(triggers=[DataAmount(every=3), Performance(columns=["x"], every=4, threshold=0.9)])
        return DataDrift(columns=["x"], window=4, every=4, min_samples=2, warmup=1000, warmup_trigger=AnyOf(
            triggers=[DataAmount(every=3), Performance(columns=["x"], every=4, threshold=0.9)]))

    def fired(fs: list[Firing]) -> list[tuple[int, int]]:
        return [(f.version, f.position) for f in fs]

    fresh, flaky = make(), make()
    want = [fired(fresh.fire(_labelled(v, 8), model=_Flaky(0))) for v in (1, 2)]
    with pytest.raises(RuntimeError, match="transient"):
        flaky.fire(_labelled(1, 8), model=_Flaky(1))
    got = [fired(flaky.fire(_labelled(v, 8), model=_Flaky(0))) for v in (1, 2)]
    assert got == want and any(want)
    assert flaky.state() == fresh.state()
