"""Documented policy options that change decisions: each test fails when its option is ignored.

Performance ``expected`` / ``bootstrap`` / ``history``, DriftAwareRetrain ``bound`` / ``trigger``,
CostBudget ``estimate`` (docs/policies.md, "Triggers" and "Update policies").
"""

from __future__ import annotations

import numpy as np
import pytest
from policy_testkit import ThresholdModel, delta

from modyn_store.core.trainset import TrainSet
from policies import CostBudget, DriftAwareRetrain, Firing, Performance, UpdateContext


def _windows(accs: list[float], every: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels whose ``every``-row windows have the given accuracies under
    ``ThresholdModel`` (class 1 when x > 0; every label is 1)."""
    x = np.concatenate([np.where(np.arange(every) < a * every, 1.0, -1.0) for a in accs])
    return x, np.ones(x.size, dtype=np.int64)


def _fire(t: Performance, version: int, accs: list[float]) -> list[Firing]:
    x, y = _windows(accs)
    return t.fire(delta(version, np.arange(x.size) + 1000 * version, labels=y, x=x), model=ThresholdModel())


# --- Performance -----------------------------------------------------------------------------

def test_performance_expected_accuracy_counts_from_the_first_window_and_after_each_training() -> None:
    # windows of accuracy 0.75 (1 miss in 4); expected 0.95 allows 0.2 misses per window, so
    # each window adds 1 - 0.2 = 0.8 avoidable misclassifications: 0.8, 1.6 > 1.5 fires after 8.
    t = Performance(columns=["x"], every=4, decision="avoidable_misclassifications",
                    threshold=1.5, expected=0.95)
    fs = _fire(t, 1, [0.75, 0.75])
    assert [(f.version, f.position) for f in fs] == [(1, 8)]
    assert fs[0].statistic == pytest.approx(1.6)
    # a training resets the expectation to `expected` again (not to the next window's accuracy)
    t.on_training(TrainSet.uniform(np.arange(8), version=1))
    fs = _fire(t, 2, [0.75, 0.75])
    assert [(f.version, f.position) for f in fs] == [(2, 8)]
    assert fs[0].statistic == pytest.approx(1.6)
    # without `expected` the first window sets it (0.75): the same stream never fires
    t = Performance(columns=["x"], every=4, decision="avoidable_misclassifications", threshold=1.5)
    assert _fire(t, 1, [0.75, 0.75]) == []


def test_performance_without_bootstrap_stays_quiet_without_a_model() -> None:
    x, y = _windows([1.0, 1.0, 1.0])
    quiet = Performance(columns=["x"], every=4, threshold=0.6, bootstrap=False)
    assert quiet.fire(delta(1, np.arange(x.size), labels=y, x=x), model=None) == []
    loud = Performance(columns=["x"], every=4, threshold=0.6, bootstrap=True)
    fs = loud.fire(delta(1, np.arange(x.size), labels=y, x=x), model=None)
    assert [(f.position, f.reason) for f in fs] == [(4, "no model yet")]


def test_performance_rolling_average_uses_only_the_last_history_accuracies() -> None:
    accs = [0.25, 1.0, 1.0, 0.5]
    # history=2: at window 4 the mean of [1.0, 1.0] is 1.0 and 0.5 < 1.0 - 0.3 fires;
    # history=10 (all): the mean of [0.25, 1.0, 1.0] is 0.75 and 0.5 >= 0.45 does not
    t = Performance(columns=["x"], every=4, decision="rolling_average", threshold=0.3, history=2)
    assert [(f.position, f.statistic) for f in _fire(t, 1, accs)] == [(16, 0.5)]
    t = Performance(columns=["x"], every=4, decision="rolling_average", threshold=0.3, history=10)
    assert _fire(t, 1, accs) == []


# --- DriftAwareRetrain -------------------------------------------------------------------------

def _firing(stat: float, trigger: str = "data_drift") -> Firing:
    return Firing(version=3, position=5, reason="x", statistic=stat, trigger=trigger)


def _mode(policy: object, firing: Firing) -> str:
    return policy.decide(UpdateContext(2, firing=firing, current_model="m1")).mode  # type: ignore[attr-defined]


@pytest.mark.parametrize("bound, stat, mode", [
    (0.3, 0.2, "finetune"),    # 0.2 <= 0.3 (but > 0.1, the default)
    (0.3, 0.35, "retrain"),
    (0.05, 0.08, "retrain"),   # 0.08 > 0.05 (but <= 0.1, the default)
    (0.05, 0.05, "finetune"),  # equal to the bound: not above it
])
def test_drift_aware_retrain_compares_with_its_bound(bound: float, stat: float, mode: str) -> None:
    assert _mode(DriftAwareRetrain(bound=bound), _firing(stat)) == mode


def test_drift_aware_retrain_reads_the_statistic_of_the_named_trigger() -> None:
    p = DriftAwareRetrain(bound=0.3, trigger="performance")
    assert _mode(p, _firing(0.5, "performance")) == "retrain"
    assert _mode(p, _firing(0.1, "performance")) == "finetune"
    assert _mode(p, _firing(0.9, "data_drift")) == "finetune"  # not the named trigger
    composite = Firing(version=3, position=5, reason="2 of 2", trigger="at_least",
                       causes=(_firing(0.9, "data_drift"), _firing(0.4, "performance")))
    d = p.decide(UpdateContext(2, firing=composite, current_model="m1"))
    assert (d.mode, d.base) == ("retrain", None)
    assert "0.4" in d.reason
    assert _mode(DriftAwareRetrain(bound=0.3), _firing(0.5, "performance")) == "finetune"


# --- CostBudget --------------------------------------------------------------------------------

@pytest.mark.parametrize("estimate, spent, mode", [
    (20.0, 0.0, "finetune"),   # 0 + 20 > 10
    (5.0, 0.0, "retrain"),     # 0 + 5 <= 10
    (5.0, 6.0, "finetune"),    # 6 + 5 > 10
    (None, 10.0, "retrain"),   # no estimate counts 0: 10 + 0 <= 10
])
def test_cost_budget_uses_the_estimate_before_a_retrain_was_measured(
        estimate: float | None, spent: float, mode: str) -> None:
    p = CostBudget(budget=10.0, estimate=estimate)
    d = p.decide(UpdateContext(3, current_model="m2", training_seconds=spent, last_retrain_seconds=None))
    assert d.mode == mode
    assert d.base == ("m2" if mode == "finetune" else None)
    # a measured retrain replaces the estimate
    d = p.decide(UpdateContext(3, current_model="m2", training_seconds=0.0, last_retrain_seconds=1.0))
    assert d.mode == "retrain"
