"""Keys of computed scores follow the store's key rules: a float, string or out-of-range uint64
key is refused with a typed error naming the score, never cast onto another row's key."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from policies import Loss, SelectionContext


@pytest.fixture(scope="module")
def snap():  # type: ignore[no-untyped-def]
    store = Store.open(f"memory://score-keys-{uuid.uuid4().hex}", create=True)
    return store.as_of(store.append(pa.table({"key": [-1, 1, 2, 3], "ts": [0, 1, 2, 3]})).version)


@pytest.mark.parametrize("keys", [
    np.array([1.5, 2.0, 3.0]),
    np.array([1.0, 2.0, 3.0]),
    np.array(["1", "2", "3"]),
    np.array([2**64 - 1, 2, 3], dtype=np.uint64),
])
def test_bad_computed_score_keys_are_refused(snap, keys) -> None:  # type: ignore[no-untyped-def]
    values = np.array([10.0, 0.0, 0.0])
    for src in ((keys, values), lambda: iter([(keys, values)])):
        ctx = SelectionContext(snapshot=snap, computed_scores={"loss": src})
        with pytest.raises(InvalidArgumentError) as e:
            Loss(limit=1, ratio=None).select(ctx)
        assert e.value.name == "computed_scores['loss']"


def test_integer_computed_score_keys_still_work(snap) -> None:  # type: ignore[no-untyped-def]
    for keys in (np.array([-1, 2, 3]), np.array([1, 2, 3], dtype=np.uint64), [1, 2, 3],
                 pa.array([1, 2, 3], type=pa.int32())):
        ctx = SelectionContext(snapshot=snap, computed_scores={"loss": (keys, np.array([10.0, 0, 0]))})
        got = Loss(limit=1, ratio=None).select(ctx).keys.tolist()
        assert got == [np.asarray(keys)[0].item()], keys
