"""``Retrain``: always train from a fresh initialisation or a named base checkpoint."""

from __future__ import annotations

from typing import Any

from modyn_store.core._validate import check_scope
from policies.base import UpdateContext, UpdateDecision, UpdatePolicy, check_registered, register

__all__ = ["Retrain"]


@register("retrain")
class Retrain(UpdatePolicy):
    """Retrain every time from ``base`` (``None``: a fresh initialisation).

    Parameters
    ----------
    base:
        A named base checkpoint, or ``None``.
    scope:
        Selection strategy name for every training (``None``: the pipeline's default),
        checked on construction like a selection ``name`` (``policies.get``).

    Example
    -------
    >>> from policies import Retrain, UpdateContext
    >>> Retrain(base="imagenet").decide(UpdateContext(trigger_index=1, current_model="m0")).base
    'imagenet'
    """

    def __init__(self, base: str | None = None, scope: str | None = None) -> None:
        self.base = check_scope("base", base)
        self.scope = check_registered("scope", "selection", scope)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"base": "pretrained", "scope": "all_data"}]

    def _decide(self, ctx: UpdateContext) -> UpdateDecision:
        start = "a fresh initialisation" if self.base is None else f"base {self.base!r}"
        return UpdateDecision("retrain", self.base, f"retrain from {start}", self.scope)
