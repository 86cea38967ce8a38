"""A trigger refuses a delta it cannot read with a typed error naming it, before its state
changes: a delta without the trigger's feature columns, or something that is not a delta."""

from __future__ import annotations

import numpy as np
import pytest

from modyn_store.core.errors import InvalidArgumentError
from policies import AnyOf, DataAmount, DataDrift, Performance, TriggerInput


class _Sign:
    def embed(self, f):  # type: ignore[no-untyped-def]
        return f["x"][:, None]

    def logits(self, f):  # type: ignore[no-untyped-def]
        return np.stack([-f["x"], f["x"]], axis=1)


def _delta(version: int, n: int, **features: np.ndarray) -> TriggerInput:
    keys = np.arange(n) + 10 * version
    return TriggerInput(version=version, keys=keys, ts=keys, labels=np.ones(n, dtype=np.int64),
                        features=features)


@pytest.mark.parametrize("make", [
    lambda: Performance(columns=["x"], every=4),
    lambda: DataDrift(columns=["x"], window=2, min_samples=2),
    lambda: AnyOf(triggers=[DataAmount(every=2), Performance(columns=["x"], every=4)]),
])
def test_missing_feature_column_is_refused_before_state_changes(make) -> None:  # type: ignore[no-untyped-def]
    t, ref = make(), make()
    for tr in (t, ref):
        tr.fire(_delta(1, 3, x=np.ones(3)), model=_Sign())
    with pytest.raises(InvalidArgumentError) as e:
        t.fire(_delta(2, 3, z=np.ones(3)), model=_Sign())
    assert e.value.name == "delta.features" and e.value.value == "x"
    good = _delta(2, 6, x=np.array([1.0, -1, -1, -1, 1, 1]))
    assert [(f.version, f.position) for f in t.fire(good, model=_Sign())] == \
        [(f.version, f.position) for f in ref.fire(good, model=_Sign())]


def test_empty_delta_needs_no_columns() -> None:
    e = np.empty(0, dtype=np.int64)
    assert Performance(columns=["x"], every=4).fire(TriggerInput(version=1, keys=e, ts=e)) == []


@pytest.mark.parametrize("bad", [None, 5, {"keys": [1]}])
def test_not_a_delta_is_refused(bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError) as e:
        DataAmount(every=2).fire(bad)
    assert e.value.name == "delta"


@pytest.mark.parametrize(("field", "value"), [
    ("keys", np.array([1.7, 2.2])),  # a cast truncated these to keys 1 and 2
    ("keys", np.array([2**63 + 5, 2**63 + 6], dtype=np.uint64)),  # wrapped to negative keys
    ("keys", np.array(["1", "2"])),
    ("deleted", np.array([3.9])),
    ("erased", np.array([2**64 - 1], dtype=np.uint64)),  # wrapped to key -1
    ("versions", np.array([0.5, 1.5])),
    ("version", 1.9),
])
def test_keys_and_versions_are_integers_never_cast(field: str, value: object) -> None:
    args: dict[str, object] = {"version": 2, "keys": np.array([1, 2]), "ts": np.array([0, 1])}
    args[field] = value
    with pytest.raises(InvalidArgumentError) as e:
        TriggerInput(**args)  # type: ignore[arg-type]
    assert e.value.name == field


def test_removed_float_key_never_counts_as_another_train_row() -> None:
    from modyn_store.core.trainset import TrainSet
    from policies import Deletion

    t = Deletion(share=0.5)
    t.on_training(TrainSet.uniform(np.array([3, 4]), version=1))
    e = np.empty(0, dtype=np.int64)
    with pytest.raises(InvalidArgumentError):  # 3.9 is no key; cast, it named row 3
        t.fire(TriggerInput(version=2, keys=e, ts=e, deleted=np.array([3.9])))
    assert t.fire(TriggerInput(version=2, keys=e, ts=e, deleted=[], erased=np.array([], dtype=float))) == []
