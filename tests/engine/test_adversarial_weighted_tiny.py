"""Weighted sampling is invariant to scaling every weight, down to subnormal weights."""

from __future__ import annotations

import numpy as np
import pytest

from engine import WeightedSampler, weighted_sample


@pytest.mark.parametrize("scale", [1e-300, 1e-310, 1e-320, 5e-324])
def test_tiny_equal_weights_give_the_sample_of_unit_weights(scale: float) -> None:
    w = np.full(1000, 1.0)
    for seed in (0, 1, 2):
        want = weighted_sample(w, 300, seed=seed)
        assert np.array_equal(weighted_sample(w * scale, 300, seed=seed), want)


def test_tiny_weights_are_drawn_at_random_not_by_key() -> None:
    w = np.full(1000, 1e-320)
    share_low = np.mean([(weighted_sample(w, 300, seed=s) < 300).mean() for s in range(20)])
    assert 0.25 < share_low < 0.35  # a uniform sample puts 30% below key 300, not 100%


def test_tiny_weights_rank_below_normal_ones_and_by_size() -> None:
    w = np.array([1.0, 5e-324, 1e-320, 1e-315] * 3)
    assert weighted_sample(w, 6, seed=1).tolist() == [0, 3, 4, 7, 8, 11]
    s = WeightedSampler(6, seed=1)
    s.update(w[:5])
    s.update(w[5:])
    assert s.result().tolist() == [0, 3, 4, 7, 8, 11]
