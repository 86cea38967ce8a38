"""GDumb's greedy memory fed in chunks through one random stream."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import EngineInputError
from engine.memory import greedy_balanced, random_state


def _chunked(keys: np.ndarray, cls: np.ndarray, cuts: list[int], memory: int, seed: int):  # type: ignore[no-untyped-def]
    rng = random_state(seed)
    mk, mc = np.empty(0, np.int64), np.empty(0, np.int64)
    for a, b in zip([0, *cuts], [*cuts, keys.size]):
        mk, mc = greedy_balanced(mk, mc, keys[a:b], cls[a:b], memory=memory, n_classes=4, rng=rng)
    return mk, mc


def test_one_stream_over_chunks_equals_one_call() -> None:
    gen = np.random.default_rng(3)
    keys = np.arange(500, dtype=np.int64)
    cls = gen.integers(0, 4, 500)
    whole = greedy_balanced(np.empty(0, np.int64), np.empty(0, np.int64), keys, cls, memory=30,
                            n_classes=4, seed=9)
    for cuts in ([1], [29, 30, 31], [100, 250, 499], list(range(5, 500, 7))):
        mk, mc = _chunked(keys, cls, cuts, 30, 9)
        assert np.array_equal(mk, whole[0]) and np.array_equal(mc, whole[1]), cuts


@pytest.mark.parametrize("rng", [np.array([1], dtype=np.int64), np.zeros(2, dtype=np.uint64), 7])
def test_a_bad_stream_is_refused_by_name(rng) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EngineInputError, match="rng"):
        greedy_balanced([], [], [1], [0], memory=1, rng=rng)
