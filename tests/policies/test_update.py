"""Update policies on a scripted sequence of triggers, drifts and erasures.

A tiny runner keeps what a pipeline runner keeps (current model id, last full retrain, keys
trained on since then, erased keys, seconds spent) and records which weights every training
starts from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from modyn_store.core.errors import InvalidArgumentError
from policies import (
    CostBudget,
    DeletionAwareRetrain,
    DriftAwareRetrain,
    Finetune,
    Firing,
    PeriodicRetrain,
    Retrain,
    UpdateContext,
    UpdateDecision,
    UpdatePolicy,
)


@dataclass
class Step:
    """One trigger: the firing, the keys trained on, keys erased before it, training seconds."""

    firing: Firing | None = None
    train_keys: tuple[int, ...] = ()
    erased_before: tuple[int, ...] = ()
    seconds: float = 10.0


@dataclass
class ScriptRunner:
    policy: UpdatePolicy
    models: list[str] = field(default_factory=list)
    decisions: list[UpdateDecision] = field(default_factory=list)

    def run(self, steps: list[Step]) -> list[tuple[str, str | None]]:
        current = None
        last_retrain = None
        last_retrain_seconds = None
        trained: set[int] = set()
        erased: set[int] = set()
        spent = 0.0
        for i, s in enumerate(steps):
            erased |= set(s.erased_before)
            ctx = UpdateContext(
                trigger_index=i, firing=s.firing,
                erased_trained_keys=np.array(sorted(erased & trained), dtype=np.int64),
                training_seconds=spent, current_model=current, last_retrain_index=last_retrain,
                last_retrain_seconds=last_retrain_seconds)
            d = self.policy.decide(ctx)
            self.decisions.append(d)
            if d.mode == "retrain":
                last_retrain, last_retrain_seconds = i, s.seconds
                trained, erased = set(), set()
            trained |= set(s.train_keys)
            spent += s.seconds
            current = f"m{i}"
        return [(d.mode, d.base) for d in self.decisions]


def drift(stat: float) -> Firing:
    return Firing(version=1, position=0, reason="drift", statistic=stat, trigger="data_drift")


def test_finetune_continues_from_the_previous_model() -> None:
    out = ScriptRunner(Finetune()).run([Step()] * 4)
    assert out == [("retrain", None), ("finetune", "m0"), ("finetune", "m1"), ("finetune", "m2")]


def test_retrain_always_starts_from_base() -> None:
    assert ScriptRunner(Retrain()).run([Step()] * 3) == [("retrain", None)] * 3
    out = ScriptRunner(Retrain(base="imagenet", scope="all_data"))
    assert out.run([Step()] * 2) == [("retrain", "imagenet")] * 2
    assert {d.selection_scope for d in out.decisions} == {"all_data"}


def test_periodic_retrain_every_third() -> None:
    r = ScriptRunner(PeriodicRetrain(every=3, retrain_scope="all_data",
                                     finetune_scope="new_data"))
    out = r.run([Step()] * 7)
    assert out == [("retrain", None), ("finetune", "m0"), ("finetune", "m1"), ("retrain", None),
                   ("finetune", "m3"), ("finetune", "m4"), ("retrain", None)]
    assert [d.selection_scope for d in r.decisions] == [
        "all_data", "new_data", "new_data", "all_data", "new_data", "new_data", "all_data"]


def test_drift_aware_retrain_uses_the_firing_statistic() -> None:
    composite = Firing(version=2, position=3, reason="2 of 2", trigger="at_least",
                       causes=(Firing(1, 0, "amount", 100.0, "data_amount"), drift(0.5)))
    steps = [Step(drift(0.9)), Step(drift(0.1)), Step(drift(0.31)), Step(None),
             Step(Firing(1, 0, "amount", 100.0, "data_amount")), Step(composite)]
    out = ScriptRunner(DriftAwareRetrain(bound=0.3, base="b0")).run(steps)
    # data_amount's statistic (100) must not count; the composite's drift cause (0.5) does
    assert out == [("retrain", "b0"), ("finetune", "m0"), ("retrain", "b0"), ("finetune", "m2"),
                   ("finetune", "m3"), ("retrain", "b0")]


def test_deletion_aware_retrain_after_erasure_of_trained_key() -> None:
    steps = [
        Step(train_keys=(1, 2, 3)),
        Step(train_keys=(4, 5), erased_before=(9,)),     # 9 never trained on: fine-tune
        Step(train_keys=(6,), erased_before=(2,)),       # 2 was trained on: retrain
        Step(train_keys=(7,), erased_before=(3,)),       # 3 trained on before the retrain only
        Step(train_keys=(8,), erased_before=(6, 4)),     # 6 trained on at the retrain: retrain
        Step(train_keys=(10,)),
    ]
    r = ScriptRunner(DeletionAwareRetrain())
    out = r.run(steps)
    assert out == [("retrain", None), ("finetune", "m0"), ("retrain", None), ("finetune", "m2"),
                   ("retrain", None), ("finetune", "m4")]
    assert "1 erased" in r.decisions[2].reason


def test_cost_budget() -> None:
    steps = [Step(seconds=30.0)] * 5
    out = ScriptRunner(CostBudget(budget=100.0, estimate=20.0)).run(steps)
    # spent before each: 0, 30, 60, 90, 120; retrain cost 20 then 30 (measured)
    # 0+20 <= 100 R | 30+30 <= 100 R | 60+30 <= 100 R | 90+30 > 100 F | 120+30 > 100 F
    assert out == [("retrain", None), ("retrain", None), ("retrain", None), ("finetune", "m2"),
                   ("finetune", "m3")]


def test_first_training_without_model_is_a_retrain_for_every_policy() -> None:
    ctx = UpdateContext(trigger_index=1, firing=drift(0.0))  # no current model
    for p in (Finetune(), PeriodicRetrain(every=2), DriftAwareRetrain(bound=1.0),
              DeletionAwareRetrain(), CostBudget(budget=1.0, estimate=5.0)):
        assert p.decide(ctx).mode == "retrain", p


def test_finetune_starts_its_first_training_from_base() -> None:
    # no current model yet: the first training is a retrain from ``base``; later ones fine-tune
    p = Finetune(base="pretrained", scope="all_data")
    first = p.decide(UpdateContext(0, current_model=None))
    assert (first.mode, first.base, first.selection_scope) == ("retrain", "pretrained", "all_data")
    later = p.decide(UpdateContext(1, current_model="m0"))
    assert (later.mode, later.base, later.selection_scope) == ("finetune", "m0", "all_data")
    assert Finetune().decide(UpdateContext(0, current_model=None)).base is None


def test_decision_and_context_validation() -> None:
    with pytest.raises(InvalidArgumentError, match="mode"):
        UpdateDecision("warm", None, "x")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="base"):
        UpdateDecision("finetune", None, "x")
    with pytest.raises(InvalidArgumentError, match="trigger_index"):
        UpdateContext(trigger_index=-1)
    with pytest.raises(InvalidArgumentError, match=r"every.*\[1, inf\]"):
        PeriodicRetrain(every=0)
    with pytest.raises(InvalidArgumentError, match="budget"):
        CostBudget(budget=0)


@pytest.mark.parametrize(("field", "value"), [
    ("trigger_index", 1.7),  # int() made it trigger 1
    ("trigger_index", True),
    ("last_retrain_index", 0.5),
    ("erased_trained_keys", np.array([1.5])),  # cast to key 1
    ("training_seconds", float("nan")),  # compared false with the budget: never a retrain
    ("training_seconds", -5.0),
    ("last_retrain_seconds", float("inf")),
])
def test_update_context_checks_its_numbers(field: str, value: object) -> None:
    args: dict[str, object] = {"trigger_index": 2, "current_model": "m1"}
    args[field] = value
    with pytest.raises(InvalidArgumentError) as e:
        UpdateContext(**args)  # type: ignore[arg-type]
    assert e.value.name == field


def test_update_context_takes_numpy_numbers() -> None:
    c = UpdateContext(np.int64(3), training_seconds=np.float32(2.5), last_retrain_index=np.int64(1),
                      last_retrain_seconds=np.int64(4), current_model="m2", erased_trained_keys=[])
    assert (c.trigger_index, c.training_seconds, c.last_retrain_index, c.last_retrain_seconds) == (3, 2.5, 1, 4.0)
    assert type(c.trigger_index) is int and c.erased_trained_keys.dtype == np.int64
    assert CostBudget(budget=10.0).decide(c).mode == "retrain"  # 2.5 + 4 <= 10
