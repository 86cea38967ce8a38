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


def _two_pass_uniform(ctx: SelectionContext, size_of: object, seed: int, since: object = None) -> np.ndarray:
    """The reference: count the eligible rows, then sample ``size_of(count)`` of them."""
    from policies._pick import pick
    from policies._stream import count_rows

    n = count_rows(ctx, since=since)  # type: ignore[arg-type]
    return pick(ctx, size_of(n), "uniform", seed=seed, n=n, since=since)  # type: ignore[operator, arg-type]


def test_one_pass_uniform_equals_count_then_sample() -> None:
    """Counting and sampling in one pass (bounded by the snapshot's metadata) picks exactly the
    sample of counting first, with deletes, erasures, excluded keys and candidates, at every version."""
    from policies import AllData, Uniform
    from policies._pick import derive_seed

    store = _store()
    rng = np.random.default_rng(5)
    key = 0
    for v in range(1, 7):
        n = int(rng.integers(50, 400))
        store.append(pa.table({"key": np.arange(key, key + n), "ts": rng.integers(0, 10, n)}))
        key += n
        if v == 3:
            store.delete(keys=rng.choice(key, 40, replace=False))
        if v == 5:
            store.erase(rng.choice(key, 30, replace=False), reason="test")
            store.compact()
    for version in range(1, store.version + 1):
        snap = store.as_of(version)
        live = snap.keys()
        assert snap.count_bound() >= live.size
        for excluded, candidates in [(np.empty(0, np.int64), None), (live[-17:], None), (live[-5:], live[::3])]:
            for ratio in (0.01, 0.3, 1.0):
                ctx = SelectionContext(snapshot=snap, excluded=excluded, candidates=candidates, seed=version)
                strat = Uniform(ratio=ratio)
                got = strat.select(ctx).keys
                want = _two_pass_uniform(ctx, strat.expected_size, derive_seed(ctx.seed, 3))
                assert got.tolist() == want.tolist(), (version, ratio)
                eligible = np.setdiff1d(live, excluded)
                if candidates is not None:
                    eligible = np.intersect1d(eligible, candidates)
                assert got.size == strat.expected_size(eligible.size)
                assert np.isin(got, eligible).all()
            lim = AllData(limit=25)
            assert lim.select(ctx).keys.tolist() == _two_pass_uniform(ctx, lim.expected_size,
                                                                       derive_seed(ctx.seed, 1)).tolist()
