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


def _rho(loss: np.ndarray, irreducible: tuple[np.ndarray, np.ndarray]) -> tuple[list[int], list[int]]:
    from policies import RhoLoss

    ctx = SelectionContext(snapshot=_SNAP, computed_scores={"loss": (np.arange(loss.size), loss),
                                                            "irreducible_loss": irreducible})
    strategy = RhoLoss(ratio=1.0, limit=1)
    return strategy.select(ctx).keys.tolist(), strategy.holdout(ctx).keys.tolist()


def test_rho_loss_refuses_integer_scores_beyond_float64() -> None:
    """RHO-LOSS cast its scores to float64 unchecked: 2**53 + 1 tied with 2**53."""
    zeros = (np.arange(6), np.zeros(6, dtype=np.int64))
    _, held = _rho(np.zeros(6), zeros)
    a, b = [k for k in range(6) if k not in held][1:3]
    exact = np.zeros(6, dtype=np.int64)
    exact[[a, b]] = [2**53, 2**53 - 1]
    assert _rho(exact, zeros)[0] == [a]
    for dtype in (np.int64, np.uint64):
        big = np.zeros(6, dtype=dtype)
        big[[a, b]] = [2**53, 2**53 + 1]  # as float64 both are 2**53: key a won
        with pytest.raises(InvalidArgumentError) as e:
            _rho(big, zeros)
        assert e.value.name == f"scores['loss'][key {b}]"
    negative = np.zeros(6, dtype=np.int64)
    negative[a] = -(2**53) - 1
    with pytest.raises(InvalidArgumentError) as e:
        _rho(np.zeros(6), (np.arange(6), negative))
    assert e.value.name == f"scores['irreducible_loss'][key {a}]"


def test_rho_loss_refuses_rows_with_a_loss_but_no_irreducible_loss() -> None:
    """Such rows were dropped without a word: the set was a ratio of fewer rows than asked for."""
    loss = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    _, held = _rho(loss, (np.arange(6), np.zeros(6)))
    rest = [k for k in range(6) if k not in held]
    with pytest.raises(InvalidArgumentError, match=rf"none for 1 of 5 rows with a loss \(keys \[{rest[-1]}\]\)") as e:
        _rho(loss, (np.array(rest[:-1]), np.zeros(4)))
    assert e.value.name == "scores['irreducible_loss']"
    with pytest.raises(InvalidArgumentError, match="none for 5 of 5"):
        _rho(loss, (np.empty(0, np.int64), np.empty(0)))
    # an irreducible loss without a loss (a row that is not scored) is not ranked, as for every score strategy
    chosen, _ = _rho(loss[:5], (np.arange(6)[::-1], np.zeros(6)))
    assert chosen == [max(k for k in range(5) if k not in held)]
