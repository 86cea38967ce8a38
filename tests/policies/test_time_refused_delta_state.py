"""A delta the time trigger refuses (a NaN or infinite event time) leaves it as it was: the
origin of a trigger without ``start`` is not taken from the refused delta, and the interval and
the count of seen rows do not move."""

from __future__ import annotations

import numpy as np
import pytest

from modyn_store.core.errors import InvalidArgumentError
from policies import Time, TriggerInput


@pytest.mark.parametrize("bad", [np.array([3.0, np.nan]), np.array([3.0, np.inf]),
                                 np.array([np.nan, 3.0])])
def test_refused_delta_leaves_the_trigger_as_it_was(bad: np.ndarray) -> None:
    t, ref = Time(every=10.0), Time(every=10.0)
    first = TriggerInput(version=1, keys=np.arange(2), ts=np.array([50.0, 52.0]))
    for tr in (t, ref):
        tr.fire(first)
    with pytest.raises(InvalidArgumentError):
        t.fire(TriggerInput(version=2, keys=np.arange(2, 4), ts=bad))
    good = TriggerInput(version=2, keys=np.arange(4, 8), ts=np.array([55.0, 59, 60, 75]))
    assert [(f.version, f.position, f.seen) for f in t.fire(good)] == \
        [(f.version, f.position, f.seen) for f in ref.fire(good)]


def test_refused_first_delta_does_not_set_the_origin() -> None:
    t, ref = Time(every=10.0), Time(every=10.0)
    with pytest.raises(InvalidArgumentError):
        t.fire(TriggerInput(version=1, keys=np.arange(2), ts=np.array([3.0, np.nan])))
    good = TriggerInput(version=1, keys=np.arange(4), ts=np.array([100.0, 105, 109, 111]))
    got = [(f.position, f.seen) for f in t.fire(good)]
    assert got == [(f.position, f.seen) for f in ref.fire(good)] == [(3, 3)]
