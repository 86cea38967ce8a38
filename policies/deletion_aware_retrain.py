"""``DeletionAwareRetrain``: retrain from scratch once a trained-on sample was erased."""

from __future__ import annotations

from typing import Any

from policies._update import MixedUpdate
from policies.base import UpdateContext, UpdateDecision, register

__all__ = ["DeletionAwareRetrain"]


@register("deletion_aware_retrain")
class DeletionAwareRetrain(MixedUpdate):
    """Retrain when a sample of any train set since the last full retrain was erased.

    Fine-tuning would keep the erased sample's influence in the weights; a retrain from a fresh
    initialisation (or a ``base`` checkpoint that never saw store data) removes it. The runner
    passes those keys as ``UpdateContext.erased_trained_keys``.

    Parameters
    ----------
    base, retrain_scope, finetune_scope:
        As for ``PeriodicRetrain``.

    Example
    -------
    >>> import numpy as np
    >>> from policies import DeletionAwareRetrain, UpdateContext
    >>> p = DeletionAwareRetrain()
    >>> p.decide(UpdateContext(2, current_model="m1", erased_trained_keys=np.array([7]))).reason
    '1 erased sample(s) trained on since the last retrain'
    """

    def __init__(self, base: str | None = None, retrain_scope: str | None = None,
                 finetune_scope: str | None = None) -> None:
        self._init_mixed(base, retrain_scope, finetune_scope)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}]

    def _decide(self, ctx: UpdateContext) -> UpdateDecision:
        n = int(ctx.erased_trained_keys.size)
        if n:
            return self._retrain(f"{n} erased sample(s) trained on since the last retrain")
        return self._finetune(ctx, "no trained-on sample erased since the last retrain")
