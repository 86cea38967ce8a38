"""``SelectionContext`` refuses fields it cannot use with a typed error naming the field: float or
string keys (never truncated onto another key), cutoffs that are not versions or not oldest
first, a negative trigger index, history that is not train sets, malformed computed scores."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies import Cutoff, NewData, SelectionContext, TriggerBalanced, Uniform


@pytest.fixture(scope="module")
def snap():  # type: ignore[no-untyped-def]
    store = Store.open(f"memory://ctx-checks-{uuid.uuid4().hex}", create=True)
    for v in range(3):
        store.append(pa.table({"ts": np.arange(4) + 4 * v, "label": np.arange(4) % 2}))
    return store.as_of(3)


@pytest.mark.parametrize(("fields", "name"), [
    ({"excluded": np.array([1.5])}, "excluded"),
    ({"excluded": [True]}, "excluded"),
    ({"candidates": np.array(["a"])}, "candidates"),
    ({"candidates": np.array([2.0])}, "candidates"),
    ({"trigger_cutoffs": (True,)}, "trigger_cutoffs[0]"),
    ({"trigger_cutoffs": (1.5,)}, "trigger_cutoffs[0]"),
    ({"trigger_cutoffs": ("1",)}, "trigger_cutoffs[0]"),
    ({"trigger_cutoffs": (-1,)}, "trigger_cutoffs[0]"),
    ({"trigger_cutoffs": (3, 1)}, "trigger_cutoffs[1]"),
    ({"trigger_cutoffs": (Cutoff(2, 5, 5), Cutoff(2, 4, 4))}, "trigger_cutoffs[1]"),
    ({"trigger_cutoffs": (2, Cutoff(2, 5, 5))}, "trigger_cutoffs[1]"),
    ({"trigger_index": -1}, "trigger_index"),
    ({"trigger_index": 1.0}, "trigger_index"),
    ({"history": (None,)}, "history[0]"),
    ({"computed_scores": {"loss": 5}}, "computed_scores['loss']"),
    ({"computed_scores": {"loss": (1, 2, 3)}}, "computed_scores['loss']"),
    ({"computed_scores": [("loss", 1)]}, "computed_scores"),
    ({"batch_size": "8"}, "batch_size"),
    ({"batch_size": 2**70}, "batch_size"),  # the store's bound, 2**32 - 1: refused here, not at the first read
    ({"batch_size": 2**32}, "batch_size"),
    ({"embed": 3}, "embed"),
    ({"embed": np.zeros((2, 2))}, "embed"),
    ({"scores_version": -1}, "scores_version"),
    ({"label_column": ""}, "label_column"),
])
def test_bad_fields_are_refused(snap, fields, name) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError) as e:
        SelectionContext(snapshot=snap, **fields)
    assert e.value.name == name


def test_good_fields_still_work(snap) -> None:  # type: ignore[no-untyped-def]
    ctx = SelectionContext(snapshot=snap, excluded=[11], candidates=np.array([9, 1, 10, 11], dtype=np.uint32),
                           trigger_cutoffs=(1, Cutoff(2, 5, 5), Cutoff(2, 5, 5), Cutoff(2), np.int64(2)),
                           trigger_index=np.int64(2), history=(TrainSet.uniform(np.array([1]), version=1),),
                           computed_scores={"loss": ([1, 2], [0.5, 0.1]), "x": lambda: iter(())})
    assert ctx.candidates.tolist() == [1, 9, 10, 11] and ctx.excluded.tolist() == [11]
    assert SelectionContext(snapshot=snap, batch_size=2**32 - 1, embed=np.asarray).batch_size == 2**32 - 1
    assert NewData().select(ctx).keys.tolist() == [9, 10]
    assert Uniform(ratio=1.0).select(ctx).keys.tolist() == [1, 9, 10]
    assert TriggerBalanced(ratio=1.0).select(ctx).keys.tolist() == [1, 9, 10]
