"""A deletion firing's cutoff is the end of the delta's last version, where the removals take
effect, also when the delta's inserted rows belong to an earlier version (a chunk and the
deletion event after it, fed as one delta)."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa

from modyn_store import Store
from modyn_store.core.trainset import TrainSet
from policies import AllData, AnyOf, AtLeast, DataAmount, Deletion, SelectionContext, TriggerInput


def _store_with_deletion() -> tuple[Store, np.ndarray]:
    store = Store.open(f"memory://deletion-cutoff-{uuid.uuid4().hex}", create=True)
    store.append(pa.table({"ts": np.arange(4), "label": np.zeros(4, dtype=np.int64)}))  # v1
    first = store.as_of(1).keys()
    store.append(pa.table({"ts": np.arange(4, 6), "label": np.zeros(2, dtype=np.int64)}))  # v2
    store.delete(keys=first[:2])  # v3
    return store, first


def test_deletion_cutoff_is_the_version_that_removed_rows() -> None:
    store, first = _store_with_deletion()
    t = Deletion(share=0.5)
    t.on_training(TrainSet.uniform(first, version=1))
    tin = TriggerInput.from_delta(store.delta(1, 3), columns=())
    fs = t.fire(tin)
    assert [(f.version, f.position, f.boundary) for f in fs] == [(3, 0, None)]
    assert tin.keys_after(fs[0]).size == 0
    chosen = AllData().select(SelectionContext(snapshot=store.as_of(fs[0].version),
                                               excluded=tin.keys_after(fs[0])))
    assert sorted(chosen.keys.tolist()) == sorted(first[2:].tolist()) + sorted(
        set(store.as_of(3).keys().tolist()) - set(first.tolist()))
    assert not np.isin(first[:2], chosen.keys).any()


def test_deletion_cutoff_counts_rows_of_the_last_version() -> None:
    t = Deletion(share=0.5)
    t.on_training(TrainSet.uniform(np.array([1, 2]), version=1))
    d = TriggerInput(version=3, keys=np.array([5, 6, 7]), ts=np.array([0, 1, 2]),
                     versions=np.array([2, 3, 3]), deleted=np.array([1]))
    assert [(f.version, f.position, f.boundary) for f in t.fire(d)] == [(3, 2, None)]


def test_composite_keeps_the_deletion_cutoff_version() -> None:
    store, first = _store_with_deletion()
    for comp in (AnyOf(triggers=[Deletion(share=0.5)]),
                 AtLeast(n=2, triggers=[DataAmount(every=6), Deletion(share=0.5)])):
        comp.on_training(TrainSet.uniform(first, version=1))
        if isinstance(comp, AtLeast) and comp.n == 2:
            comp.fire(TriggerInput.from_delta(store.delta(0, 1), columns=()))  # 4 rows: no firing
        tin = TriggerInput.from_delta(store.delta(1, 3), columns=())
        fs = comp.fire(tin)
        assert [(f.version, f.position, f.boundary) for f in fs] == [(3, 0, None)], comp
