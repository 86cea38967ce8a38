"""Triggers fed the same rows in one delta or split into several fire at the same rows.

A cutoff at the end of one delta, ``(v, len)``, and one before the first row of the next,
``(v + 1, 0)``, hold the same rows: a composite counts sub-firings at either as one position.
A ``Deletion`` trigger told a train set selected inside a delta of several versions counts the
train set's keys that a later version of that delta removed.
"""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import (
    AnyOf,
    AtLeast,
    DataAmount,
    Deletion,
    NewData,
    SelectionContext,
    Time,
    Trigger,
    TriggerInput,
)


def _absolute(t: Trigger, ts: np.ndarray, cuts: list[int]) -> list[int]:
    """Feed ``ts`` (keys 0..n-1) as one delta per slice between ``cuts``; firing positions as
    row counts from the start of the stream."""
    out, start = [], 0
    for v, end in enumerate([*cuts, ts.size], start=1):
        keys = np.arange(start, end, dtype=np.int64)
        for f in t.fire(TriggerInput(version=v, keys=keys, ts=ts[start:end])):
            assert f.version == v
            out.append(start + f.position)
        start = end
    return out


def _composite() -> AtLeast:
    return AtLeast(n=2, triggers=[DataAmount(every=3), Time(every=4, start=0)])


def test_composite_counts_a_sub_firing_at_the_next_deltas_start_with_the_one_it_made() -> None:
    # rows 0..2 at ts 0, 5, 7; row 3 at ts 8 reaches the boundary 8. As one delta, DataAmount
    # (after row 3) and Time (before row 3, ts 8) fire at position 3 together: one firing that
    # uses both. Split after row 3, DataAmount fires at the end of delta 2 (with Time's earlier
    # firing before row 1 the composite fires there), and Time fires before the first row of
    # delta 3: the same cutoff, already used, so it must not arm the next firing.
    ts = np.array([0, 5, 7, 8, 9, 10, 11, 12, 14, 15, 18, 18, 19, 22, 24, 24, 27, 27, 28, 29])
    whole = _absolute(_composite(), ts, [])
    assert whole == [3, 7, 10, 13, 15, 18]
    assert _absolute(_composite(), ts, [2, 3, 10]) == whole


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=0, max_size=40),
       st.lists(st.integers(0, 40), max_size=5), st.integers(1, 5), st.integers(1, 5))
def test_composite_is_independent_of_how_rows_are_split(gaps: list[int], cuts: list[int],
                                                         every: int, span: int) -> None:
    ts = np.cumsum(np.asarray(gaps, dtype=np.int64))
    cuts = sorted({c for c in cuts if c <= ts.size})

    def make() -> AtLeast:
        return AtLeast(n=2, triggers=[DataAmount(every=every), Time(every=span, start=0)])

    assert _absolute(make(), ts, cuts) == _absolute(make(), ts, [])


def _deletion_run(step: int) -> list[tuple[int, int, list[str]]]:
    """A store where version 2 deletes half of version 1's rows, fed ``step`` versions a delta."""
    from modyn_store import Store

    store = Store.open(f"memory://deletion-split-{uuid.uuid4().hex}", create=True)
    store.append(pa.table({"key": np.arange(10), "ts": np.arange(10)}))
    store.delete(keys=[0, 1, 2, 3, 4])
    store.append(pa.table({"key": np.arange(10, 12), "ts": np.arange(10, 12)}))
    store.append(pa.table({"key": np.arange(12, 14), "ts": np.arange(12, 14)}))
    t = AnyOf(triggers=[DataAmount(every=10), Deletion(share=0.3)])
    out = []
    for a in range(0, store.version, step):
        d = TriggerInput.from_delta(store.delta(a, min(a + step, store.version)))
        for f in t.fire(d):
            out.append((f.version, f.position, [c.trigger for c in f.causes]))
            train = NewData().select(SelectionContext(snapshot=store.as_of(f.version),
                                                      excluded=d.keys_after(f)))
            t.on_training(train)
    return out


def test_deletion_counts_keys_a_later_version_of_the_same_delta_removed() -> None:
    # fed one version at a time: the training after version 1 holds keys 0..9, version 2
    # deletes 5 of them, the deletion trigger fires. Fed versions 1-2 as one delta, the training
    # (selected as of version 1) holds the same keys; the deletion must still count.
    one = _deletion_run(1)
    assert [c for *_, c in one] == [["data_amount"], ["deletion"]]
    two = _deletion_run(2)
    assert [c for *_, c in two] == [["data_amount"], ["deletion"]]
    assert two[1][:2] == (4, 2)  # at the next delta (versions 3-4): the end of its last version
