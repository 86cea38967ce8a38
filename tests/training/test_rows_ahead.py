"""The next epoch's rows, computed in a background thread while an epoch is served
(training.order.RowsAhead): used only for the epoch and arrays they were computed from."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from modyn_store.core.trainset import TrainSet
from training.loading import epoch_order, loader
from training.order import Ordering, RowsAhead


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch's gathers on one thread: a core is left for the order drawn ahead."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_epochs_in_any_order_serve_their_own_order(store, one_thread) -> None:
    rng = np.random.default_rng(8)
    keys = rng.choice(store.as_of(None).keys(), 300, replace=False)
    ts = TrainSet(keys=keys, weights=np.ones(300), version=store.version)
    dl = loader(store, ts, columns=["label"], batch_size=32, seed=13)
    spare = dl._spare_core()
    for epoch in [0, 1, 2, 3, 1, 1, 4, 3]:
        dl.set_epoch(epoch)
        got = np.concatenate([b["key"].numpy() for b in dl])
        np.testing.assert_array_equal(got, ts.keys[epoch_order(ts, epoch, shuffle=True, seed=13)], err_msg=str(epoch))
        assert (dl._ahead is not None) == (spare and epoch > 0)  # epoch 0 streams from the build


def test_no_order_drawn_ahead_when_the_gathers_use_every_core(store) -> None:
    keys = store.as_of(None).keys()[:100]
    dl = loader(store, TrainSet.uniform(keys, version=store.version), columns=["label"], batch_size=32, seed=1)
    dl.wait_materialized()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(len(os.sched_getaffinity(0)))
        for _ in dl:
            pass
        assert dl._ahead is None
    finally:
        torch.set_num_threads(before)


def test_take_matches_only_the_same_ordering_epoch_and_arrays() -> None:
    ts = TrainSet.uniform(np.arange(1000, 1500), version=1)
    o = Ordering(shuffle=True, seed=5, rank=0, world_size=1)
    rows = np.arange(500)[::-1].copy()
    ahead = RowsAhead(o, ts, 3, rows)
    assert ahead.take(o, ts, 4, rows) is None
    assert ahead.take(Ordering(shuffle=True, seed=6, rank=0, world_size=1), ts, 3, rows) is None
    assert ahead.take(o, ts, 3, rows.copy()) is None  # equal values, another array: not trusted
    np.testing.assert_array_equal(ahead.take(o, ts, 3, rows), o.rows(ts, 3, rows))


def test_an_error_in_the_thread_is_raised_by_take() -> None:
    ts = TrainSet.uniform(np.arange(10), version=1)
    o = Ordering(shuffle=True, seed=5, rank=0, world_size=1)
    bad = np.zeros(3, np.int64)  # not one row per position
    ahead = RowsAhead(o, ts, 1, bad)
    with pytest.raises(Exception, match="rows"):
        ahead.take(o, ts, 1, bad)
