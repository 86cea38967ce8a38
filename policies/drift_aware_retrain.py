"""``DriftAwareRetrain``: retrain when the drift that fired is large, else fine-tune."""

from __future__ import annotations

from typing import Any

from modyn_store.core._validate import check_float
from modyn_store.core.errors import InvalidArgumentError
from policies._update import MixedUpdate
from policies.base import UpdateContext, UpdateDecision, register

__all__ = ["DriftAwareRetrain"]


@register("drift_aware_retrain")
class DriftAwareRetrain(MixedUpdate):
    """Retrain when the statistic of the firing drift trigger exceeds ``bound``.

    The statistic is the largest one among the firing and its causes (composites) whose
    trigger is named ``trigger``; a training started by another trigger fine-tunes.

    Parameters
    ----------
    bound:
        Statistic above which to retrain (in the drift metric's units).
    trigger:
        The registered name of the drift trigger whose statistic counts.
    base, retrain_scope, finetune_scope:
        As for ``PeriodicRetrain``.

    Example
    -------
    >>> from policies import DriftAwareRetrain, Firing, UpdateContext
    >>> f = Firing(version=3, position=10, reason="drift", statistic=0.4, trigger="data_drift")
    >>> DriftAwareRetrain(bound=0.3).decide(UpdateContext(1, firing=f, current_model="m0")).mode
    'retrain'
    """

    def __init__(self, bound: float = 0.1, trigger: str = "data_drift", base: str | None = None,
                 retrain_scope: str | None = None, finetune_scope: str | None = None) -> None:
        self.bound = check_float("bound", bound)
        if not isinstance(trigger, str) or not trigger:
            raise InvalidArgumentError("trigger", trigger, "a registered trigger name")
        self.trigger = trigger
        self._init_mixed(base, retrain_scope, finetune_scope)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"bound": 0.2}]

    def _decide(self, ctx: UpdateContext) -> UpdateDecision:
        stats = [] if ctx.firing is None else [
            f.statistic for f in ctx.firing.walk()
            if f.trigger == self.trigger and f.statistic is not None]
        if not stats:
            return self._finetune(ctx, f"no {self.trigger} statistic in the firing")
        stat = max(stats)
        if stat > self.bound:
            return self._retrain(f"drift statistic {stat:.4g} > bound {self.bound:g}")
        return self._finetune(ctx, f"drift statistic {stat:.4g} <= bound {self.bound:g}")
