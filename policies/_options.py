"""Options that only some settings of a policy read (a drift trigger's ``quantile`` is read by
``decision="quantile"`` alone): given with another value than the default under a setting that
ignores it, the option is refused (:func:`only_with`) instead of silently doing nothing. The
default itself is taken under any setting, so a policy's exported config (which lists every
parameter) always reads back.

>>> def make(decision: str = "threshold", quantile: float = 0.95) -> float:
...     return only_with(make, "quantile", quantile, "decision", decision, ("quantile",))
>>> make(quantile=0.95)
0.95
>>> make(quantile=0.9)
Traceback (most recent call last):
...
modyn_store.core.errors.InvalidArgumentError: invalid quantile=0.9: expected the default 0.95 with decision='threshold' ...
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from modyn_store.core.errors import InvalidArgumentError

__all__ = ["only_with"]

T = TypeVar("T")


def only_with(owner: Callable[..., Any], name: str, value: T, setting: str, chosen: str, users: Sequence[str]) -> T:
    """``value`` of ``owner``'s parameter ``name`` (already checked), when the ``setting``
    ``chosen`` reads it (it is one of ``users``) or ``value`` is the parameter's default in
    ``owner``'s signature; else :class:`InvalidArgumentError` naming ``name``, the settings that
    read it and the default the others take."""
    default = _defaults(owner)[name]
    if chosen in users or value == default:
        return value
    names = [repr(u) for u in users]
    which = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    raise InvalidArgumentError(
        name, value, f"the default {default!r} with {setting}={chosen!r} (it ignores {name}): "
                     f"{name} is read with {setting} {which} only")


@functools.lru_cache(maxsize=None)
def _defaults(owner: Callable[..., Any]) -> dict[str, Any]:
    """The default of each parameter of ``owner`` (read once per function)."""
    return {k: p.default for k, p in inspect.signature(owner).parameters.items()}
