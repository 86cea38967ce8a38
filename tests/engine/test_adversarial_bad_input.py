"""Malformed arguments raise EngineInputError naming the argument."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import engine
from engine import drift
from engine.errors import EngineInputError

_CASES: list[tuple[str, Callable[[], Any], str]] = [
    ("top_k ragged", lambda: engine.top_k([1, [2, 3]], 1), "scores"),
    ("TopK ragged", lambda: engine.TopK(1).update([1, [2, 3]]), "scores"),
    ("mmd ragged", lambda: drift.mmd_permutation_test([1, [2, 3]], np.zeros((3, 1))), "x"),
    ("rff ragged", lambda: drift.mmd2_rff(np.zeros((3, 1)), [1, [2, 3]]), "y"),
    ("linear ragged", lambda: drift.mmd2_linear([1, [2, 3]], np.zeros((3, 1))), "x"),
    ("bandwidth text", lambda: drift.mmd2_unbiased(np.zeros((3, 1)), np.ones((3, 1)), bandwidth="wide"), "bandwidth"),  # type: ignore[arg-type]
    ("bandwidth array", lambda: drift.mmd2_unbiased(np.zeros((3, 1)), np.ones((3, 1)), bandwidth=[1.0, 2.0]), "bandwidth"),  # type: ignore[arg-type]
    ("bandwidth bool", lambda: drift.mmd2_unbiased(np.zeros((3, 1)), np.ones((3, 1)), bandwidth=True), "bandwidth"),
    ("rule array", lambda: engine.balanced_select([0, 1], 1, rule=np.array(["top", "uniform"])), "rule"),  # type: ignore[arg-type]
    ("rule list", lambda: engine.BalancedSelector(1, rule=["uniform"]), "rule"),  # type: ignore[arg-type]
    ("reservoir None", lambda: engine.reservoir_sample(None, 2, seed=0), "items"),
    ("reservoir float", lambda: engine.reservoir_sample(3.0, 2, seed=0), "items"),
    ("reservoir text items", lambda: engine.reservoir_sample(iter(["a"]), 2, seed=0), "items"),
]


@pytest.mark.parametrize(("call", "name"), [(c, n) for _, c, n in _CASES], ids=[i for i, _, _ in _CASES])
def test_bad_argument_is_named(call: Callable[[], Any], name: str) -> None:
    with pytest.raises(EngineInputError) as info:
        call()
    assert info.value.name == name


_MASKED = np.ma.masked_array([5.0, 2.0], mask=[True, False])


@pytest.mark.parametrize(("call", "name"), [
    (lambda: engine.top_k(_MASKED, 1), "scores"),
    (lambda: engine.TopK(1).update(_MASKED), "scores"),
    (lambda: engine.weighted_sample(np.ma.masked_array([1.0, 0.0], mask=[True, False]), 1, seed=0), "weights"),
    (lambda: engine.balanced_select([0, 1], 1, rule="top", scores=_MASKED), "scores"),
    (lambda: engine.top_k([1.0, 2.0], 1, keys=np.ma.masked_array([1, 2], mask=[False, True])), "keys"),
    (lambda: engine.kcenter_greedy(np.ma.masked_array(np.eye(2), mask=[[True, False], [False, False]]), 1),
     "embeddings"),
], ids=["top_k", "TopK", "weighted_sample", "balanced_select", "keys", "kcenter"])
def test_masked_entries_are_refused(call: Callable[[], Any], name: str) -> None:
    # np.asarray drops the mask: the hidden 5.0 (or weight 1.0) would be selected
    with pytest.raises(EngineInputError) as info:
        call()
    assert info.value.name == name


def test_masked_array_without_masked_entries_is_its_data() -> None:
    assert engine.top_k(np.ma.masked_array([5.0, 2.0], mask=[False, False]), 1).tolist() == [0]
