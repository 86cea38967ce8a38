"""Engine kernels under extreme sizes and weights: Python-int sizes beyond int64, importance
weights of weights near the float64 limits."""

from __future__ import annotations

import numpy as np
import pytest

from engine import (
    EngineInputError,
    Reservoir,
    TopK,
    UniformSampler,
    WeightedSampler,
    bottom_k,
    reservoir_sample,
    top_k,
    uniform_sample,
    weighted_sample,
)
from engine.memory import greedy_balanced

HUGE = (10**30, 2**63, 2**63 - 1, 2**40)


@pytest.mark.parametrize("k", HUGE)
def test_a_size_beyond_the_rows_selects_every_row(k: int) -> None:
    s = np.array([1.0, 2.0, np.nan, 0.5])
    assert top_k(s, k).tolist() == top_k(s, 4).tolist() == [1, 0, 3]
    assert bottom_k(s, k).tolist() == [3, 0, 1]
    assert top_k([1.0, 2.0], k, sorted=False).tolist() == [0, 1]
    acc = TopK(k)
    acc.update([1.0, 2.0])
    acc.update([0.5], keys=[7])
    assert acc.result()[0].tolist() == [1, 0, 7]
    assert uniform_sample(5, k, seed=1).tolist() == [0, 1, 2, 3, 4]
    assert weighted_sample([1.0, 0.0, 2.0], k, seed=1).tolist() == [0, 2]
    us = UniformSampler(k, seed=1)
    us.update(n=3)
    us.update(keys=[10, 11])
    assert us.result().tolist() == [0, 1, 2, 10, 11]
    ws = WeightedSampler(k, seed=1)
    ws.update([1.0, 2.0])
    ws.update([0.0, 3.0])
    assert ws.result().tolist() == [0, 1, 3]


@pytest.mark.parametrize("k", HUGE)
def test_reservoir_of_a_huge_size_keeps_every_item(k: int) -> None:
    assert reservoir_sample([5, 6, 7], k, seed=0).tolist() == [5, 6, 7]
    r = Reservoir(k, seed=3)
    for chunk in (np.arange(2000), np.arange(2000, 2500)):
        r.update(chunk)
    assert r.result().tolist() == list(range(2500))


def test_reservoir_growth_keeps_the_sample() -> None:
    # the buffer grows as items arrive; the sample is the one of a full-size buffer
    for k in (1, 5, 1500, 5000):
        a = Reservoir(k, seed=11)
        for lo in range(0, 6000, 700):
            a.update(np.arange(lo, min(lo + 700, 6000)))
        assert a.result().tolist() == reservoir_sample(np.arange(6000), k, seed=11).tolist()
        assert a.result().shape[0] == min(k, 6000)


@pytest.mark.parametrize("memory", HUGE)
def test_gdumb_memory_beyond_the_rows_keeps_every_row(memory: int) -> None:
    keys, cls = greedy_balanced(np.empty(0, np.int64), np.empty(0, np.int64), np.arange(4),
                                np.array([0, 1, 1, 0]), memory=memory, seed=1)
    assert keys.tolist() == [0, 1, 2, 3] and cls.tolist() == [0, 1, 1, 0]
    keys, cls = greedy_balanced(keys, cls, np.arange(4, 6), np.array([1, 1]), memory=memory, seed=2)
    assert keys.tolist() == [0, 1, 2, 3, 4, 5]


def test_row_count_beyond_int64_is_a_typed_error() -> None:
    with pytest.raises(EngineInputError) as err:
        uniform_sample(10**30, 1, seed=0)
    assert err.value.name == "n"
    with pytest.raises(EngineInputError) as err:
        UniformSampler(1, seed=0).update(n=10**30)
    assert err.value.name == "n"


def test_importance_of_weights_near_the_float64_maximum_is_finite() -> None:
    idx, iw = weighted_sample([1e308, 1e308, 1.0], 3, seed=0, return_importance=True)
    assert idx.tolist() == [0, 1, 2]
    # sum(w) / (n w_i) with sum(w) = 2e308 + 1, beyond float64: computed scaled by the largest
    assert iw.tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3 * 1e308])
    assert np.isfinite(iw).all()
    s = WeightedSampler(3, seed=0)
    s.update([1.0])  # the running total is rescaled when a larger weight arrives
    s.update([1e308, 1e308])
    keys, siw = s.result(return_importance=True)
    assert keys.tolist() == [0, 1, 2] and np.isfinite(siw).all()
    assert siw.tolist() == pytest.approx([2 / 3 * 1e308, 2 / 3, 2 / 3])


def test_importance_keeps_its_values_for_ordinary_weights() -> None:
    idx, iw = weighted_sample([1.0, 0.0, 2.0, 1.0], 2, seed=1, return_importance=True)
    assert idx.tolist() == [0, 2] and iw.tolist() == [1.0, 0.5]
    _, uniform = weighted_sample(np.full(50, 3.0), 10, seed=4, return_importance=True)
    assert uniform.tolist() == [1.0] * 10
    rng = np.random.default_rng(0)
    w = rng.uniform(0.1, 5.0, 300)
    idx, iw = weighted_sample(w, 40, seed=2, return_importance=True)
    np.testing.assert_allclose(iw, w.sum() / (w.size * w[idx]), rtol=1e-12)


def test_importance_that_cannot_be_represented_names_the_weight() -> None:
    with pytest.raises(EngineInputError) as err:
        weighted_sample([1e-320, 1.0], 2, seed=0, return_importance=True)
    assert err.value.name == "weights[0]"
    s = WeightedSampler(2, seed=0)
    s.update([1.0, 1e-320], keys=[40, 41])
    with pytest.raises(EngineInputError) as err:
        s.result(return_importance=True)
    assert err.value.name == "weights[41]"  # the streaming sampler names the key
    # not chosen, or not asked for: no error
    assert weighted_sample([1e-320, 1.0], 1, seed=0, return_importance=True)[0].tolist() == [1]
    assert weighted_sample([1e-320, 1.0], 2, seed=0).tolist() == [0, 1]
    # tiny weights all alike are fine: only the ratio to the largest matters
    idx, iw = weighted_sample([1e-320, 2e-320], 2, seed=0, return_importance=True)
    assert np.isfinite(iw).all() and iw.tolist() == pytest.approx([1.5, 0.75])
