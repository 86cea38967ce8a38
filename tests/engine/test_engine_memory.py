"""GDumb's greedy class-balanced memory against the plain-Python reference."""

from __future__ import annotations

import naive
import numpy as np
import pytest

from engine import EngineInputError
from engine.memory import greedy_balanced


@pytest.mark.parametrize("seed", range(8))
def test_matches_reference_over_several_calls(seed: int) -> None:
    rng = np.random.default_rng(seed)
    memory, n_classes = int(rng.integers(1, 60)), int(rng.integers(1, 6))
    mk, mc = np.empty(0, np.int64), np.empty(0, np.int64)
    rk, rc = [], []
    start = 0
    for call in range(4):
        n = int(rng.integers(0, 200))
        p = rng.dirichlet(np.ones(n_classes))
        keys = np.arange(start, start + n, dtype=np.int64)
        cls = rng.choice(n_classes, n, p=p)
        start += n
        if call == 2 and mk.size:  # drop some rows between calls (deleted keys)
            keep = rng.random(mk.size) < 0.7
            mk, mc = mk[keep], mc[keep]
            rk, rc = [k for k, m in zip(rk, keep) if m], [c for c, m in zip(rc, keep) if m]
        mk, mc = greedy_balanced(mk, mc, keys, cls, memory=memory, n_classes=n_classes, seed=seed * 10 + call)
        rk, rc = naive.greedy_balanced(rk, rc, keys.tolist(), cls.tolist(), memory, n_classes, seed * 10 + call)
        assert mk.tolist() == rk and mc.tolist() == rc


def test_balances_classes_with_enough_samples() -> None:
    rng = np.random.default_rng(0)
    cls = rng.choice(4, 5000, p=[0.7, 0.2, 0.07, 0.03])
    _, mc = greedy_balanced([], [], np.arange(5000), cls, memory=100, seed=3)
    assert np.bincount(mc).tolist() == [25, 25, 25, 25]


def test_invalid_input() -> None:
    with pytest.raises(EngineInputError, match="memory"):
        greedy_balanced([], [], [1], [0], memory=0)
    with pytest.raises(EngineInputError, match="classes"):
        greedy_balanced([], [], [1, 2], [0], memory=3)
    with pytest.raises(EngineInputError, match="mem_keys"):
        greedy_balanced([1, 2, 3], [0, 0, 0], [], [], memory=2)
