"""``CostBudget``: retrain while a training-seconds budget allows, else fine-tune."""

from __future__ import annotations

from typing import Any

from modyn_store.core._validate import check_float, check_float_or_none
from policies._update import MixedUpdate
from policies.base import UpdateContext, UpdateDecision, register

__all__ = ["CostBudget"]


@register("cost_budget")
class CostBudget(MixedUpdate):
    """Retrain while spent seconds plus the expected retrain cost fit in ``budget``.

    The expected cost of a retrain is the last retrain's seconds (``last_retrain_seconds``),
    or ``estimate`` before any retrain was measured.

    Parameters
    ----------
    budget:
        Training seconds the pipeline may spend, > 0.
    estimate:
        Expected seconds of a retrain before one was measured (``None``: 0).
    base, retrain_scope, finetune_scope:
        As for ``PeriodicRetrain``.

    Example
    -------
    >>> from policies import CostBudget, UpdateContext
    >>> p = CostBudget(budget=100.0)
    >>> p.decide(UpdateContext(4, current_model="m3", training_seconds=90.0,
    ...                        last_retrain_seconds=20.0)).mode
    'finetune'
    """

    def __init__(self, budget: float = 3600.0, estimate: float | None = None,
                 base: str | None = None, retrain_scope: str | None = None,
                 finetune_scope: str | None = None) -> None:
        self.budget = check_float("budget", budget, 0.0, lo_open=True)
        self.estimate = check_float_or_none("estimate", estimate, 0.0)
        self._init_mixed(base, retrain_scope, finetune_scope)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"budget": 50.0, "estimate": 10.0}]

    def _decide(self, ctx: UpdateContext) -> UpdateDecision:
        cost = ctx.last_retrain_seconds
        if cost is None:
            cost = self.estimate or 0.0
        need = ctx.training_seconds + cost
        if need <= self.budget:
            return self._retrain(f"{ctx.training_seconds:g}s spent + {cost:g}s retrain <= "
                                 f"budget {self.budget:g}s")
        return self._finetune(ctx, f"{ctx.training_seconds:g}s spent + {cost:g}s retrain > "
                                   f"budget {self.budget:g}s")
