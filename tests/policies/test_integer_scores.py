"""Integer scores are ranked as float64: those that float64 holds exactly rank as they are,
larger ones (which would round and tie, the smaller key winning) are refused naming the row."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from fakes import MemorySnapshot

from modyn_store.core.errors import InvalidArgumentError
from policies import Loss, Margin, SelectionContext

_SNAP = MemorySnapshot(pa.table({"key": np.arange(6, dtype=np.int64), "ts": np.arange(6)}), 1)


def _top(values: np.ndarray, strategy: type = Loss) -> list[int]:
    ctx = SelectionContext(snapshot=_SNAP, computed_scores={strategy.score: (np.arange(values.size), values)})
    return strategy(ratio=1.0, limit=1).select(ctx).keys.tolist()  # type: ignore[no-any-return]


def test_exact_integer_scores_rank_as_their_values() -> None:
    assert _top(np.array([1, 5, 2**53, 3, 2**53 - 1], dtype=np.int64)) == [2]
    assert _top(np.array([1, 5, -(2**53), 3], dtype=np.int64), Margin) == [2]
    assert _top(np.array([3, 9, 2], dtype=np.uint64)) == [1]


@pytest.mark.parametrize("values", [
    np.array([1, 2, 2**53, 2**53 + 1], dtype=np.int64),  # as float64 both are 2**53: key 2 won
    np.array([1, 2, 2**53, 2**53 + 1], dtype=np.uint64),
])
def test_integer_scores_beyond_float64_are_refused_not_tied(values: np.ndarray) -> None:
    with pytest.raises(InvalidArgumentError) as e:
        _top(values)
    assert e.value.name == "scores['loss'][key 3]"


def test_a_batch_of_large_integer_scores_is_refused() -> None:
    s = Loss(ratio=0.5, mode="batch_then_sample")
    with pytest.raises(InvalidArgumentError) as e:
        s.choose_in_batch(np.array([2**53 + 1, 2**53, 0, 1], dtype=np.int64), seed=0)
    assert e.value.name == "scores['loss'][batch position 0]"
    assert s.choose_in_batch(np.array([2**53, 2**53 - 1, 0, 1], dtype=np.int64), seed=0)[0].tolist() == [0, 1]
