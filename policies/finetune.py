"""``Finetune``: always continue training from the current model."""

from __future__ import annotations

from typing import Any

from modyn_store.core._validate import check_scope
from policies.base import UpdateContext, UpdateDecision, UpdatePolicy, check_registered, register

__all__ = ["Finetune"]


@register("finetune")
class Finetune(UpdatePolicy):
    """Fine-tune the current model; the first training (no model yet) starts from ``base``.

    Parameters
    ----------
    base:
        Checkpoint for the first training (``None``: a fresh initialisation).
    scope:
        Selection strategy name for every training (``None``: the pipeline's default),
        checked on construction like a selection ``name`` (``policies.get``).

    Example
    -------
    >>> from policies import Finetune, UpdateContext
    >>> Finetune().decide(UpdateContext(trigger_index=3, current_model="m2"))
    UpdateDecision(mode='finetune', base='m2', reason='fine-tune the current model', selection_scope=None)
    """

    def __init__(self, base: str | None = None, scope: str | None = None) -> None:
        self.base = check_scope("base", base)
        self.scope = check_registered("scope", "selection", scope)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"base": "pretrained", "scope": "new_data"}]

    def _decide(self, ctx: UpdateContext) -> UpdateDecision:
        if ctx.current_model is None:
            return UpdateDecision("retrain", self.base, "no current model: first training",
                                  self.scope)
        return UpdateDecision("finetune", ctx.current_model, "fine-tune the current model",
                              self.scope)
