"""``TrainSet`` validation: keys must be distinct whatever their order; masked entries are refused."""

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


def _masked(values: list, masked: int) -> np.ma.MaskedArray:
    return np.ma.array(values, mask=[i == masked for i in range(len(values))])


@pytest.mark.parametrize("make", [
    lambda: TrainSet(np.array([1, 2, 3]), _masked([1.0, -5.0, 2.0], 1), version=1),
    lambda: TrainSet(np.array([1, 2, 3]), _masked([1.0, 0.5, 2.0], 2), version=1),  # valid value behind the mask
    lambda: TrainSet(_masked([1, 2, 3], 0), np.ones(3), version=1),
    lambda: TrainSet.uniform(_masked([1, 2, 3], 2), version=1),
    lambda: TrainSet(np.array([1, 2]), np.ones(2), version=1, per_epoch=(np.array([0, 1]),),
                     per_epoch_weights=(_masked([1.0, 3.0], 1),)),
], ids=["weights", "weights-valid-behind-mask", "keys", "uniform-keys", "per-epoch-weights"])
def test_masked_entries_are_refused_not_unmasked(make) -> None:
    # np.asarray drops the mask: the values behind it were trained on
    with pytest.raises(InvalidArgumentError, match="masked entries"):
        make()


def test_a_masked_array_without_masked_entries_is_its_data() -> None:
    ts = TrainSet(np.ma.array([4, 2]), np.ma.array([0.5, 2.0], mask=[False, False]), version=1)
    assert ts.keys.tolist() == [4, 2] and ts.weights.tolist() == [0.5, 2.0]
    assert not isinstance(ts.weights, np.ma.MaskedArray) and not isinstance(ts.keys, np.ma.MaskedArray)


def test_epoch_set_of_a_plan_drawn_with_replacement_serves_the_plan() -> None:
    """A plan that repeats a position was refused as "duplicate keys"; its set holds the distinct
    keys (first occurrence order) with one plan serving the epoch's rows as drawn."""
    ts = TrainSet(np.array([10, 20, 30, 40]), np.array([1.0, 2.0, 3.0, 4.0]), 1,
                  per_epoch=(np.array([2, 0, 2, 1]), np.array([3])))
    e0 = ts.epoch_set(0)
    assert e0.keys.tolist() == [30, 10, 20] and e0.weights.tolist() == [3.0, 1.0, 2.0]
    assert e0.keys[e0.for_epoch(0)].tolist() == [30, 10, 30, 20] and len(e0.per_epoch) == 1
    assert ts.epoch_set(1).per_epoch is None and ts.epoch_set(1).keys.tolist() == [40]  # no repeat: no plan
    odd = TrainSet(np.array([10, 20]), np.ones(2), 1, per_epoch=(np.array([0, 0, 1]),),
                   per_epoch_weights=(np.array([1.0, 2.0, 1.0]),))
    with pytest.raises(InvalidArgumentError, match="epoch 0") as info:
        odd.epoch_set(0)
    assert info.value.name == "per_epoch_weights[0]"


def test_an_unpickled_set_stays_read_only() -> None:
    import copy
    import pickle

    ts = TrainSet(np.array([3, 1]), np.array([1.0, 2.0]), 1, per_epoch=(np.array([1]),),
                  per_epoch_weights=(np.array([5.0]),))
    for back in (pickle.loads(pickle.dumps(ts)), copy.deepcopy(ts)):
        assert back == ts
        arrays = [back.keys, back.weights, *(back.per_epoch or ()), *(back.per_epoch_weights or ())]
        assert len(arrays) == 4 and not any(a.flags.writeable for a in arrays)
