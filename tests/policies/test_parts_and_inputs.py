"""Triggers that are parts of others, and inputs that would give wrong answers quietly.

A trigger keeps state, so an instance shared by two composites (or given twice) would see every
delta twice; settings that can never evaluate, fractional class labels, NaN logits, duplicate
keys in computed scores: each is refused by name or counted as the docs say.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from policies import (
    AnyOf,
    AtLeast,
    Compose,
    DataAmount,
    DataDrift,
    Loss,
    Performance,
    SelectionContext,
    TriggerInput,
)


def _rows(n: int, **features: np.ndarray) -> TriggerInput:
    return TriggerInput(version=1, keys=np.arange(n), ts=np.arange(n), features=features)


def test_a_trigger_is_part_of_one_trigger_only() -> None:
    da = DataAmount(every=3)
    with pytest.raises(InvalidArgumentError, match="clone") as err:
        AnyOf(triggers=[da, da])  # it would count every row twice: firings at 2 and 3, not 3
    assert err.value.name == "triggers[1]"
    first = AnyOf(triggers=[da])
    with pytest.raises(InvalidArgumentError) as err:
        AtLeast(n=1, triggers=[DataAmount(every=5), da])
    assert err.value.name == "triggers[1]"
    with pytest.raises(InvalidArgumentError) as err:
        DataDrift(columns=["x"], window=20, every=10, warmup=1, warmup_trigger=da)
    assert err.value.name == "warmup_trigger"
    # a clone is a trigger of its own, and both composites fire where one alone does
    second = AnyOf(triggers=[da.clone()])
    assert [f.position for f in first.fire(_rows(4))] == [3]
    assert [f.position for f in second.fire(_rows(4))] == [3]


def test_a_refused_composite_takes_no_part() -> None:
    da = DataAmount(every=3)
    with pytest.raises(InvalidArgumentError) as err:
        AtLeast(n=3, triggers=[da, DataAmount(every=2)])  # n above the count of triggers
    assert err.value.name == "n"
    with pytest.raises(InvalidArgumentError) as err:
        AnyOf(triggers=[da, 5])
    assert err.value.name == "triggers[1]"
    kept = err  # the refused composites are still reachable from the traceback
    assert [f.position for f in AnyOf(triggers=[da]).fire(_rows(4))] == [3]
    assert kept.value.name == "triggers[1]"


def test_nested_configs_are_named_by_their_argument() -> None:
    for build, name in [(lambda: DataDrift(columns=["x"], warmup_trigger=5), "warmup_trigger"),
                        (lambda: Compose(pre="x"), "pre"),
                        (lambda: Compose(post={"every": 2}), "post"),
                        (lambda: AnyOf(triggers=[{"name": "data_amount"}, 5]), "triggers[1]")]:
        with pytest.raises(InvalidArgumentError) as err:
            build()
        assert err.value.name == name


@pytest.mark.parametrize("cls", [DataDrift, Performance])
@pytest.mark.parametrize("columns", [None, 3, "x", ["x", 1]])
def test_columns_must_be_a_list_of_names(cls: type, columns: object) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        cls(columns=columns)
    assert err.value.name == "columns"


def test_data_drift_settings_that_could_never_evaluate_are_refused() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        DataDrift(columns=["x"], metric="ks", window=5, every=5)  # min_samples=10
    assert err.value.name == "window" and "min_samples=10" in str(err.value)
    with pytest.raises(InvalidArgumentError) as err:
        DataDrift(columns=["x"], metric="ks", window=100, every=100, max_samples=5)
    assert err.value.name == "max_samples"
    # at the limits the trigger evaluates, and fires on a shift
    x = np.concatenate([np.zeros(40), np.full(40, 100.0)]) + np.random.default_rng(0).normal(0, .1, 80)
    for kw in [{"window": 10, "every": 10}, {"window": 20, "every": 20, "max_samples": 10}]:
        t = DataDrift(columns=["x"], metric="ks", **kw)
        fs = t.fire(_rows(80, x=x))
        assert fs and t.n_evaluations > 0 and fs[0].position == (50 if kw["window"] == 10 else 60)
    # a window of event time may hold any number of rows: not checked against min_samples
    assert DataDrift(columns=["x"], window_time=5.0, min_samples=40).window is None


class _Sign:
    """Predicts class 1 for x > 0; NaN logits where x is NaN."""

    def embed(self, f: dict[str, np.ndarray]) -> np.ndarray:
        return f["x"][:, None]

    def logits(self, f: dict[str, np.ndarray]) -> np.ndarray:
        return np.stack([-f["x"], f["x"]], axis=1)


def _labelled(y: np.ndarray, x: np.ndarray, version: int = 1) -> TriggerInput:
    return TriggerInput(version=version, keys=np.arange(len(y)), ts=np.arange(len(y)), labels=y,
                        features={"x": x})


def test_performance_refuses_fractional_labels_before_any_state_changes() -> None:
    t = Performance(columns=["x"], every=4, threshold=0.5)
    x = np.ones(4)
    with pytest.raises(InvalidArgumentError) as err:
        t.fire(_labelled(np.array([1.0, 1.0, 1.9, 1.0]), x), model=_Sign())
    assert err.value.name == "delta.labels[2]"
    # nothing of the refused delta was kept: the next 4 rows are one evaluation on their own
    assert t.fire(_labelled(np.array([0.0, 0.0, 0.0, 1.0]), x), model=_Sign())[0].statistic == 0.25
    # whole-number floats, NaN and negative (unlabelled) rows are fine
    assert t.fire(_labelled(np.array([1.0, np.nan, -1.0, 1.0, 1.0, 1.0]), np.ones(6), version=2),
                  model=_Sign()) == []


def test_performance_counts_nan_logits_and_unknown_classes_as_misses() -> None:
    t = Performance(columns=["x"], every=4, threshold=0.5)
    x = np.array([np.nan, np.nan, np.nan, -1.0])  # argmax of a NaN row would say class 0
    fs = t.fire(_labelled(np.array([0, 0, 0, 0]), x), model=_Sign())
    assert [(f.position, f.statistic) for f in fs] == [(4, 0.25)]
    # class 7 is beyond the logits (a class the model has not seen): two misses of four
    fs = Performance(columns=["x"], every=4, threshold=0.6).fire(
        _labelled(np.array([7, 7, 1, 1]), np.ones(4)), model=_Sign())
    assert [(f.position, f.statistic) for f in fs] == [(4, 0.5)]


@pytest.fixture
def snap(tmp_path):  # type: ignore[no-untyped-def]
    store = Store.open(str(tmp_path / "store"), create=True)
    v = store.append(pa.table({"key": np.arange(100, 112), "ts": np.arange(12)})).version
    return store.as_of(v)


def test_an_importance_error_names_the_key_whatever_the_batch(snap) -> None:  # type: ignore[no-untyped-def]
    values = np.ones(12)
    values[9] = np.inf  # key 109
    for batch_size in (65536, 4):
        ctx = SelectionContext(snapshot=snap, batch_size=batch_size,
                               computed_scores={"loss": (np.arange(100, 112), values)})
        with pytest.raises(InvalidArgumentError) as err:
            Loss(ratio=0.5, method="importance").select(ctx)
        assert err.value.name == "scores['loss'][key 109]"


def test_computed_scores_hold_one_number_a_key(snap) -> None:  # type: ignore[no-untyped-def]
    def select(keys: list[int], values: np.ndarray) -> list[int]:
        ctx = SelectionContext(snapshot=snap, computed_scores={"loss": (np.array(keys), values)})
        return Loss(ratio=0.75).select(ctx).keys.tolist()

    # a key given twice would be scored twice (one key came back where 3 were asked for)
    for keys in ([100, 100, 100, 101], [101, 100, 101]):
        with pytest.raises(InvalidArgumentError, match="each key once") as err:
            select(keys, np.arange(len(keys), dtype=np.float64))
        assert err.value.name == "computed_scores['loss']"
    with pytest.raises(InvalidArgumentError, match="numeric"):
        select([100, 101], np.array(["a", "b"], dtype=object))
    assert select([103, 101, 100, 102], np.array([9.0, 8.0, 7.0, 1.0])) == [100, 101, 103]
