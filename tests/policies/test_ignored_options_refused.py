"""An option that the chosen decision (or metric, or mode) does not read is refused when given
with another value than its default, naming the option and the decisions that read it, instead of
silently doing nothing; its default is taken under every decision, so exported configs and saved
states read back."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from modyn_store.core.errors import InvalidArgumentError
from policies import DataDrift, Loss, Performance, RhoLoss, TriggerInput
from policies.base import from_config

DRIFT_METRIC = {"p_value": "ks", "threshold": "mean_shift", "quantile": "mean_shift", "rolling_average": "mean_shift"}

# (option, a value other than the default, decisions that ignore it, decisions that read it)
DRIFT_CASES = [
    ("threshold", 0.2, ["quantile"], ["p_value", "threshold", "rolling_average"]),
    ("quantile", 0.9, ["p_value", "threshold", "rolling_average"], ["quantile"]),
    ("history", 10, ["p_value", "threshold"], ["quantile", "rolling_average"]),
]


@pytest.mark.parametrize(("option", "value", "ignored_by", "read_by"), DRIFT_CASES,
                         ids=[c[0] for c in DRIFT_CASES])
def test_drift_option_the_decision_ignores_is_refused(option: str, value: Any, ignored_by: list[str],
                                                      read_by: list[str]) -> None:
    for decision in ignored_by:
        with pytest.raises(InvalidArgumentError) as err:
            DataDrift(columns=["x"], metric=DRIFT_METRIC[decision], decision=decision, **{option: value})
        assert err.value.name == option
        assert f"decision={decision!r}" in err.value.expected
        assert all(repr(d) in err.value.expected for d in read_by)  # the decisions that read it
    for decision in read_by:
        t = DataDrift(columns=["x"], metric=DRIFT_METRIC[decision], decision=decision, **{option: value})
        assert getattr(t, option) == value


def test_drift_permutations_with_a_metric_without_permutations_are_refused() -> None:
    for metric, decision in (("ks", "p_value"), ("wasserstein", "threshold"), ("mean_shift", "quantile")):
        with pytest.raises(InvalidArgumentError) as err:
            DataDrift(columns=["x"], metric=metric, decision=decision, n_permutations=50)
        assert err.value.name == "n_permutations" and "'mmd'" in err.value.expected
    assert DataDrift(columns=["x"], metric="mmd", decision="threshold", n_permutations=50).n_permutations == 50


@pytest.mark.parametrize("decision", list(DRIFT_METRIC))
def test_drift_defaults_given_explicitly_are_taken_under_every_decision(decision: str) -> None:
    t = DataDrift(columns=["x"], metric=DRIFT_METRIC[decision], decision=decision, threshold=0.05,
                  quantile=0.95, history=50, n_permutations=200)
    assert (t.threshold, t.quantile, t.history, t.n_permutations) == (0.05, 0.95, 50, 200)


@pytest.mark.parametrize(("decision", "own"), [("p_value", {"threshold": 0.01}), ("threshold", {"threshold": 0.5}),
                                               ("quantile", {"quantile": 0.8, "history": 7}),
                                               ("rolling_average", {"threshold": 0.3, "history": 4})])
def test_drift_config_and_state_round_trip_through_json(decision: str, own: dict[str, Any]) -> None:
    t = DataDrift(columns=["x"], metric=DRIFT_METRIC[decision], decision=decision, window=20, every=20, **own)
    x = np.concatenate([np.zeros(40), np.ones(40)]) + np.tile([-0.1, 0.1], 40)
    t.fire(TriggerInput(version=1, keys=np.arange(80), ts=np.arange(80), features={"x": x}))
    back = from_config("trigger", json.loads(json.dumps(t.to_config())))
    assert back.params() == t.params()
    state = json.loads(json.dumps(t.state()))
    assert state["params"] == t.to_config()

    def rows(keys: np.ndarray, columns: Any, version: int) -> TriggerInput:
        return TriggerInput(version=version, keys=keys, ts=keys, features={"x": x[keys]})

    back.load_state(state, rows)  # the saved parameters are the rebuilt trigger's
    assert back.state() == t.state()


def test_performance_history_with_a_decision_that_ignores_it_is_refused() -> None:
    for decision, threshold in (("threshold", 0.8), ("avoidable_misclassifications", 3.0)):
        with pytest.raises(InvalidArgumentError) as err:
            Performance(columns=["x"], decision=decision, threshold=threshold, history=3)
        assert err.value.name == "history"
        assert f"decision={decision!r}" in err.value.expected and "'rolling_average'" in err.value.expected
        assert Performance(columns=["x"], decision=decision, threshold=threshold, history=10).history == 10
    t = Performance(columns=["x"], decision="rolling_average", threshold=0.1, history=3)
    assert from_config("trigger", json.loads(json.dumps(t.to_config()))).params() == t.params()
    plain = Performance(columns=["x"])
    assert from_config("trigger", json.loads(json.dumps(plain.to_config()))).params() == plain.params()


@pytest.mark.parametrize("cls", [Loss, RhoLoss])
def test_score_period_in_batch_then_sample_is_refused(cls: Any) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        cls(mode="batch_then_sample", period=2)
    assert err.value.name == "period"
    assert "mode='batch_then_sample'" in err.value.expected and "'sample_then_batch'" in err.value.expected
    for t in (cls(mode="batch_then_sample"), cls(mode="batch_then_sample", period=0), cls(period=2)):
        assert from_config("selection", json.loads(json.dumps(t.to_config()))).params() == t.params()
