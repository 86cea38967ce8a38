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
from policies import All, AnyOf, AtLeast, DataAmount, Deletion, Time, Trigger, TriggerInput


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


@pytest.mark.parametrize("t", [Deletion(share=0.5), AnyOf(triggers=[DataAmount(every=3), Deletion(share=0.5)])],
                         ids=["deletion", "composite_with_deletion"])
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
