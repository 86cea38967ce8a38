"""An epoch's order is NumPy's seeded permutation whether the kernel of ``engine._shuffle`` drew
it (a process that loaded Numba) or NumPy did: recorded trainings replay the same batches."""

from __future__ import annotations

import numpy as np
import pytest

from engine import _shuffle
from modyn_store.core.trainset import TrainSet
from training import order
from training.order import Ordering


@pytest.mark.parametrize("world_size", [1, 3])
def test_kernel_and_numpy_give_the_same_epochs(monkeypatch: pytest.MonkeyPatch, world_size: int) -> None:
    ts = TrainSet.uniform(np.arange(1000, 41000, 2), version=1)  # 20,000 keys: epoch 0 in blocks
    rows = np.random.default_rng(0).permutation(ts.size) + 5
    got = {}
    for loaded in (True, False):
        monkeypatch.setattr(order, "numba_loaded", lambda loaded=loaded: loaded)
        used = []
        real = _shuffle._consume
        monkeypatch.setattr(_shuffle, "_consume", lambda x, i, raw: used.append(i) or real(x, i, raw))
        ordering = Ordering(shuffle=True, seed=11, rank=world_size - 1, world_size=world_size)
        got[loaded] = [ordering.order(ts, e) for e in range(3)] + [ordering.rows(ts, e, rows) for e in range(3)]
        assert bool(used) == loaded  # epochs 1 and 2 are one permutation each: the kernel's where loaded
    for a, b in zip(got[True], got[False]):
        assert np.array_equal(a, b)
    # and that order is the documented one: positions[permutation(n)] with rng([seed, epoch])
    want = np.random.default_rng([11, 1]).permutation(ts.size)[world_size - 1 :: world_size]
    assert np.array_equal(got[True][1], want)
    assert np.array_equal(got[True][4], rows[want])
