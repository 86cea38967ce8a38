"""``Loader.close()``: the worker processes stop (at once, or when the epoch being iterated
ends), the next epoch's order is no longer drawn ahead, and later epochs are refused."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from modyn_store.core.errors import ClosedError
from modyn_store.core.trainset import TrainSet
from tests.training.test_opts_loader import with_pid
from training.loading import loader


def _alive(pids: set[int]) -> set[int]:
    """The processes of ``pids`` still running (a zombie child counts as gone)."""
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split()[2] != "Z":
                    alive.add(pid)
        except FileNotFoundError:
            pass
    return alive


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc")
def test_close_stops_the_workers_and_refuses_later_epochs(store: Any) -> None:
    ts = TrainSet.uniform(np.sort(store.as_of(None).keys()[:90]), version=store.version)
    dl = loader(store, ts, columns=["label"], batch_size=30, transform=with_pid, num_workers=2)
    pids = {int(p) for b in dl for p in b["pid"]}
    assert pids and os.getpid() not in pids and _alive(pids) == pids  # persistent between epochs
    # closed in the middle of an epoch: that epoch ends on its workers, then they stop
    epoch = iter(dl)
    first = next(epoch)
    pool = dl._pool  # (held here too: the workers must stop on close, not when the pool is dropped)
    dl.close()
    assert not pool.closed
    rest = [int(p) for b in epoch for p in b["pid"]]
    assert len(first["key"]) + len(rest) == 90 and set(rest) <= pids
    assert pool.closed and not _alive(pids)
    with pytest.raises(ClosedError, match="closed"):
        next(iter(dl))


def test_with_block_closes_a_loader(store: Any) -> None:
    ts = TrainSet.uniform(np.sort(store.as_of(None).keys()[:40]), version=store.version)
    with loader(store, ts, columns=["label"], batch_size=10, seed=1) as dl:
        first = np.concatenate([b["key"].numpy() for b in dl])
        assert np.array_equal(np.sort(first), ts.keys)
    with pytest.raises(ClosedError):
        list(dl)
