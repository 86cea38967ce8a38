"""Policies on the real store: deltas from ``Store.delta``, selection at a firing's cutoff."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa

from modyn_store import Store
from policies import Cutoff, DataAmount, Deletion, NewData, SelectionContext, Time, TriggerInput


def _store() -> Store:
    return Store.open(f"memory://policies-int-{uuid.uuid4().hex}", create=True)


def test_time_trigger_on_store_timestamps() -> None:
    store = _store()
    base = np.datetime64("2024-03-01T00:00", "ms")
    hours = [[1, 20, 23, 25], [47, 49, 80]]
    key = 0
    t = Time(every="1d", start="2024-03-01T02:00+02:00")  # midnight UTC
    out = []
    for hs in hours:
        ts = base + np.array(hs, dtype="timedelta64[h]")
        rec = store.append(pa.table({"key": np.arange(key, key + len(hs)),
                                     "ts": pa.array(ts, pa.timestamp("ms"))}))
        key += len(hs)
        out += t.fire(store.delta(rec.version - 1, rec.version))
    assert [(f.version, f.position) for f in out] == [(1, 3), (2, 1), (2, 2)]


def test_selection_at_the_firing_cutoff() -> None:
    store = _store()
    trigger = DataAmount(every=5)
    last_cutoff = None
    for v, n in enumerate([3, 4, 6], start=1):
        k = np.arange(100 * v, 100 * v + n)
        store.append(pa.table({"key": k, "ts": k}))
        d = store.delta(v - 1, v)
        for f in trigger.fire(d):
            ctx = SelectionContext(snapshot=store.as_of(f.version),
                                   excluded=TriggerInput.from_delta(d).keys_after(f),
                                   trigger_cutoffs=() if last_cutoff is None else (last_cutoff,))
            ts = NewData().select(ctx)
            # the first 5 samples overall are 100-102, 200, 201; the next 5 are 202, 203, 300-302
            expected = [100, 101, 102, 200, 201] if f.seen == 5 else [202, 203, 300, 301, 302]
            assert f.seen in (5, 10)
            assert ts.keys.tolist() == expected
            last_cutoff = f.cutoff
    assert last_cutoff == Cutoff(3, 303, 303)  # the 10th sample is 302: 303 is past it


def test_deletion_trigger_on_store_deltas() -> None:
    store = _store()
    store.append(pa.table({"key": np.arange(20), "ts": np.arange(20)}))
    from modyn_store.core.trainset import TrainSet

    t = Deletion(share=0.2)
    t.on_training(TrainSet.uniform(np.arange(10), version=1))
    store.delete(keys=[0, 15])
    assert t.fire(store.delta(1, 2)) == []  # 1 of 10
    store.erase([1], reason="request")
    fs = t.fire(store.delta(2, 3))  # 2 of 10
    assert [(f.version, f.position, f.statistic) for f in fs] == [(3, 0, 0.2)]


def test_scores_written_after_the_snapshot() -> None:
    from policies import Loss

    store = _store()
    store.append(pa.table({"key": np.arange(10), "ts": np.arange(10)}))
    snap = store.as_of(None)
    store.append(pa.table({"key": np.arange(10, 20), "ts": np.arange(10, 20)}))
    rec = store.scores.write("loss", np.arange(20), np.arange(20, dtype=float))
    ctx = SelectionContext(snapshot=snap, scores=store.scores)
    assert Loss(limit=3).select(ctx).size == 0  # no score at the snapshot's version
    got = Loss(ratio=1.0, limit=3).select(ctx.replace(scores_version=rec.version))
    assert got.keys.tolist() == [7, 8, 9]  # the best scores among the snapshot's keys
