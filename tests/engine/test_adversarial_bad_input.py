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
