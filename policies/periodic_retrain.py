"""``PeriodicRetrain``: fine-tune, with a full retrain every ``every``-th trigger."""

from __future__ import annotations

from typing import Any

from modyn_store.core._validate import check_int
from policies._update import MixedUpdate
from policies.base import UpdateContext, UpdateDecision, register

__all__ = ["PeriodicRetrain"]


@register("periodic_retrain")
class PeriodicRetrain(MixedUpdate):
    """Retrain at trigger indices 0, ``every``, 2 ``every``, ...; fine-tune otherwise.

    Parameters
    ----------
    every:
        Retrain period in triggers, >= 1 (1: always retrain).
    base, retrain_scope, finetune_scope:
        Checkpoint retrains start from (``None``: fresh), and the selection strategy names for
        retrains and fine-tunes (``None``: the pipeline's default), checked on construction
        like a selection ``name`` (``policies.get``).

    Example
    -------
    >>> from policies import PeriodicRetrain, UpdateContext
    >>> p = PeriodicRetrain(every=3)
    >>> [p.decide(UpdateContext(trigger_index=i, current_model=f"m{i - 1}" if i else None)).mode
    ...  for i in range(5)]
    ['retrain', 'finetune', 'finetune', 'retrain', 'finetune']
    """

    def __init__(self, every: int = 5, base: str | None = None,
                 retrain_scope: str | None = None, finetune_scope: str | None = None) -> None:
        self.every = check_int("every", every, 1)
        self._init_mixed(base, retrain_scope, finetune_scope)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"every": 3}, {"every": 2, "base": "b", "retrain_scope": "all_data",
                               "finetune_scope": "new_data"}]

    def _decide(self, ctx: UpdateContext) -> UpdateDecision:
        if ctx.trigger_index % self.every == 0:
            return self._retrain(f"trigger {ctx.trigger_index} is a multiple of {self.every}")
        return self._finetune(ctx, f"trigger {ctx.trigger_index} is not a multiple of "
                                   f"{self.every}")
