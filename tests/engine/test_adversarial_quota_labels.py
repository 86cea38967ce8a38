"""Quotas over few rows with large (but small enough to index) labels."""

from __future__ import annotations

import numpy as np

from engine import balanced_select, group_counts
from engine.quota import _dense


def test_few_sparse_labels_are_not_spread_over_every_id_below_the_largest() -> None:
    groups = np.array([0, (1 << 22) - 1] * 50, dtype=np.int64)
    gids, labels = _dense(groups)
    assert labels.tolist() == [0, (1 << 22) - 1]  # two groups, not four million
    assert set(gids.tolist()) == {0, 1}


def test_dense_and_sparse_labels_select_alike() -> None:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 5, 5000)
    spread = small * 1_000_000  # the same classes, far apart
    keys = rng.permutation(5000)
    for budget in (0, 7, 1234, 5000):
        a = balanced_select(small, budget, keys=keys, seed=3)
        b = balanced_select(spread, budget, keys=keys, seed=3)
        assert np.array_equal(a, b)
    assert group_counts(spread)[1].tolist() == group_counts(small)[1].tolist()
