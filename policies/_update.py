"""Shared base of update policies that choose between fine-tuning and retraining."""

from __future__ import annotations

from modyn_store.core._validate import check_scope
from policies.base import UpdateContext, UpdateDecision, UpdatePolicy, check_registered

__all__ = ["MixedUpdate"]


class MixedUpdate(UpdatePolicy):
    """Fine-tune or retrain per training; retrains start from ``base``.

    Subclasses call ``_init_mixed`` and decide with :meth:`_retrain` / :meth:`_finetune`. The
    first training (no current model) is always a retrain.
    """

    base: str | None
    retrain_scope: str | None
    finetune_scope: str | None

    def _init_mixed(self, base: str | None, retrain_scope: str | None,
                    finetune_scope: str | None) -> None:
        self.base = check_scope("base", base)
        self.retrain_scope = check_registered("retrain_scope", "selection", retrain_scope)
        self.finetune_scope = check_registered("finetune_scope", "selection", finetune_scope)

    def _retrain(self, reason: str) -> UpdateDecision:
        return UpdateDecision("retrain", self.base, reason, self.retrain_scope)

    def _finetune(self, ctx: UpdateContext, reason: str) -> UpdateDecision:
        if ctx.current_model is None:
            return self._retrain("no current model: first training")
        return UpdateDecision("finetune", ctx.current_model, reason, self.finetune_scope)
