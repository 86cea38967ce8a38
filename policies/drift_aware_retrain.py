"""``DriftAwareRetrain``: retrain when the drift that fired is large, else fine-tune."""

from __future__ import annotations

from typing import Any

from modyn_store.core._validate import check_float
from modyn_store.core.errors import InvalidArgumentError
from policies._update import MixedUpdate
from policies.base import REGISTRY, UpdateContext, UpdateDecision, get, register

__all__ = ["DriftAwareRetrain"]


def _check_trigger_name(trigger: Any) -> str:
    """``trigger`` if it is the registered name of a trigger class (firings carry that name)."""
    if isinstance(trigger, str) and trigger and "." not in trigger and ":" not in trigger:
        try:
            cls = get("trigger", trigger)  # also loads an installed entry point of that name
        except InvalidArgumentError:
            cls = None
        if cls is not None and REGISTRY["trigger"].get(trigger) is cls:
            return trigger
    raise InvalidArgumentError("trigger", trigger,
                               f"a registered trigger name: one of {sorted(REGISTRY['trigger'])}")


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
        The registered name of the drift trigger whose statistic counts (``Firing.trigger``);
        checked on construction against the trigger registry (installed entry points included),
        so a typo fails at once instead of never retraining.
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
        self.trigger = _check_trigger_name(trigger)
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
