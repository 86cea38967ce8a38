"""Seeds outside ``[0, 2**64 - 1]`` are refused by every engine function that takes one: taken
modulo 2**64 they would give another seed's numbers (``-1`` those of ``2**64 - 1``, ``2**64 + 5``
those of ``5``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import engine
from engine import drift
from engine.errors import EngineInputError
from engine.memory import greedy_balanced

_X = np.arange(12.0).reshape(6, 2)
_CALLS: dict[str, Callable[[int], Any]] = {
    "uniform_sample": lambda s: engine.uniform_sample(10, 3, seed=s),
    "weighted_sample": lambda s: engine.weighted_sample([1.0, 2.0, 3.0], 2, seed=s),
    "reservoir_sample": lambda s: engine.reservoir_sample(range(10), 3, seed=s),
    "UniformSampler": lambda s: engine.UniformSampler(3, seed=s),
    "WeightedSampler": lambda s: engine.WeightedSampler(3, seed=s),
    "Reservoir": lambda s: engine.Reservoir(3, seed=s),
    "kcenter_greedy": lambda s: engine.kcenter_greedy(_X, 2, seed=s),
    "balanced_select": lambda s: engine.balanced_select([0, 1, 0, 1], 2, seed=s),
    "BalancedSelector": lambda s: engine.BalancedSelector(2, seed=s),
    "greedy_balanced": lambda s: greedy_balanced([], [], [1, 2, 3], [0, 1, 0], memory=2, seed=s),
    "mmd_permutation_test": lambda s: drift.mmd_permutation_test(_X[:3], _X[3:], n_permutations=5, seed=s),
    "permutations": lambda s: drift.permutations(6, 3, 5, seed=s),
    "mmd2_rff": lambda s: drift.mmd2_rff(_X[:3], _X[3:], n_features=8, seed=s),
}


@pytest.mark.parametrize("name", sorted(_CALLS))
@pytest.mark.parametrize("seed", [-1, -(2**63), 2**64, 2**64 + 5])
def test_a_seed_outside_64_bits_is_refused_naming_it(name: str, seed: int) -> None:
    with pytest.raises(EngineInputError, match=r"invalid seed=.*an integer in \[0, 2\*\*64 - 1\]"):
        _CALLS[name](seed)


@pytest.mark.parametrize("name", sorted(_CALLS))
def test_the_ends_of_the_seed_range_are_taken(name: str) -> None:
    for seed in (0, 2**64 - 1, np.uint64(2**64 - 1)):
        _CALLS[name](seed)


def test_a_seed_of_minus_one_is_refused_not_taken_as_the_largest_seed() -> None:
    assert engine.uniform_sample(1000, 5, seed=2**64 - 1).tolist() != engine.uniform_sample(1000, 5, seed=0).tolist()
    with pytest.raises(EngineInputError, match="seed"):
        engine.uniform_sample(1000, 5, seed=-1)
