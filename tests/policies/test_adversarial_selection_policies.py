"""Selection strategies on inputs where a lossy conversion or a tie decides the answer."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from policies import AllData, NewData, SelectionContext


@pytest.mark.parametrize("name", ["all_data", "new_data"])
def test_newest_orders_nanosecond_timestamps_exactly(name: str) -> None:
    # present-day nanosecond times 100 ns apart: equal once converted to float64
    strategy = (AllData if name == "all_data" else NewData)(limit=1, sample="newest")
    store = Store.open(f"memory://adversarial-newest-ns-{name}", create=True)
    t0 = np.datetime64("2026-12-03T12:00:00.000000000", "ns")
    ts = pa.array(np.array([t0, t0 + np.timedelta64(100, "ns")]), type=pa.timestamp("ns"))
    snap = store.as_of(store.append(pa.table({"key": [1, 2], "ts": ts})).version)
    assert strategy.select(SelectionContext(snapshot=snap)).keys.tolist() == [2]


def test_newest_orders_large_integer_event_times_exactly() -> None:
    store = Store.open("memory://adversarial-newest-int", create=True)
    ts = [2**60 + 3, 2**60 + 1, 2**60 + 2, 2**60]
    snap = store.as_of(store.append(pa.table({"key": [1, 2, 3, 4], "ts": ts})).version)
    got = AllData(limit=2, sample="newest").select(SelectionContext(snapshot=snap)).keys.tolist()
    assert got == [1, 3]


def test_gdumb_memory_does_not_depend_on_the_batch_size() -> None:
    from policies import GDumb

    store = Store.open("memory://adversarial-gdumb-batches", create=True)
    labels = np.random.default_rng(0).integers(0, 3, 200).tolist()
    snap = store.as_of(store.append(pa.table({"ts": list(range(200)), "label": labels})).version)
    got = {bs: GDumb(memory=20).select(SelectionContext(snapshot=snap, seed=1, batch_size=bs)).keys.tolist()
           for bs in (7, 64, 65536)}
    assert got[7] == got[64] == got[65536]


@pytest.mark.parametrize("values", [[None, 0, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3], [0, 0, 0, 1, 1, 1, None, 2, 2, 3, 3, 3]])
@pytest.mark.parametrize("batch_size", [2, 3, 65536])
def test_class_balanced_nullable_integer_labels_give_one_quota_per_class(values: list, batch_size: int) -> None:  # type: ignore[type-arg]
    # a batch holding a null reads as float64 (NaN), one without as int64
    from policies import ClassBalanced

    store = Store.open(f"memory://adversarial-cb-null-{values[0]}-{batch_size}", create=True)
    table = pa.table({"ts": list(range(12)), "label": pa.array(values, pa.int64())})
    snap = store.as_of(store.append(table).version)
    got = ClassBalanced(limit=5).select(SelectionContext(snapshot=snap, batch_size=batch_size)).keys
    chosen = [values[k] for k in got.tolist()]
    assert sorted(chosen, key=lambda v: (v is None, v)) == [0, 1, 2, 3, None]


def test_importance_size_is_a_share_of_every_scored_row() -> None:
    from policies import Loss

    store = Store.open("memory://adversarial-importance-size", create=True)
    keys = np.arange(1, 11)
    snap = store.as_of(store.append(pa.table({"key": keys.tolist(), "ts": keys.tolist()})).version)
    loss = np.array([0.0] * 5 + [1.0, 2.0, 3.0, 4.0, 5.0])  # rows of loss 0 are never drawn
    ctx = SelectionContext(snapshot=snap, computed_scores={"loss": (keys, loss)})
    strategy = Loss(ratio=0.4, method="importance")
    got = strategy.select(ctx)
    assert got.size == 4 == strategy.choose_in_batch(loss, seed=0)[0].size
    assert (got.keys > 5).all()
    # fewer positive rows than the share: every positive row
    assert Loss(ratio=0.8, method="importance").select(ctx).keys.tolist() == [6, 7, 8, 9, 10]
