"""``TrainSet`` validation: keys must be distinct whatever their order."""

from __future__ import annotations

import numpy as np
import pytest

from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet


@pytest.mark.parametrize("keys", [[1, 2, 2, 3], [3, 1, 2, 1], [5, 5], [0, 9, 4, 9, 1]])
def test_duplicate_keys_are_refused(keys: list[int]) -> None:
    with pytest.raises(InvalidArgumentError, match="keys"):
        TrainSet(np.array(keys), np.ones(len(keys)), version=1)


@pytest.mark.parametrize("keys", [[], [7], [1, 2, 3], [3, 1, 2], [-5, 10, 0]])
def test_distinct_keys_in_any_order_are_accepted(keys: list[int]) -> None:
    ts = TrainSet(np.array(keys, dtype=np.int64), np.ones(len(keys)), version=1)
    assert ts.keys.tolist() == keys
