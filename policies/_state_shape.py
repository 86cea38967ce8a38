"""Checks of the plain data a trigger's ``load_state`` (and the online loop's restore) takes:
JSON numbers as Python reads them back, booleans excluded; and the trigger parameters a state
records (:func:`own_state`).

>>> is_count(3), is_count(True), is_keys([1, -2]), is_number(float("nan")), is_finite(float("nan"))
(True, False, True, True, False)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from modyn_store.core.errors import InvalidArgumentError

__all__ = ["is_count", "is_finite", "is_keys", "is_number", "own_state", "with_params"]

#: The entry of a trigger's state that holds the parameters of the trigger that saved it.
PARAMS = "params"


def _canon(value: Any) -> str:
    """A parameter value as canonical JSON (lists and tuples alike, keys sorted; ``5`` and
    ``5.0`` differ, as they do in a saved state)."""
    return json.dumps(value, sort_keys=True, default=str)


def own_state(state: Any, params: Mapping[str, Any], what: str, *, bare_ok: bool = False) -> Any:
    """``state`` without its ``"params"`` entry, once those are ``params`` (the parameters of the
    trigger taking it, as plain data): a state of a trigger with another ``every`` (or any other
    parameter) counts intervals, windows or batches of another size, and would fire at the wrong
    rows. Refused with :class:`InvalidArgumentError` naming ``state.params.<name>`` (the first
    parameter that differs), or ``state.params`` when they are missing (``bare_ok``: a state whose
    meaning does not depend on the parameters, taken as it is) or not a mapping of the same
    names. Anything else than a mapping is returned as it is, for the trigger's shape check.

    >>> own_state({"params": {"every": 3}, "seen": 4}, {"every": 3}, "a state")
    {'seen': 4}
    >>> own_state({"params": {"every": 3}, "seen": 4}, {"every": 5}, "a state")
    Traceback (most recent call last):
    ...
    modyn_store.core.errors.InvalidArgumentError: invalid state.params.every=3: expected every=5, ...
    """
    if not isinstance(state, Mapping):
        return state
    if PARAMS not in state:
        if bare_ok:
            return state
        raise InvalidArgumentError(
            "state.params", None, f"{what} that records the parameters of the trigger that saved it "
            f"({_canon(dict(params))}): without them it cannot be told from the state of a trigger with "
            "other parameters, whose counts mean something else (feed the trigger every delta instead)")
    saved = state[PARAMS]
    if not isinstance(saved, Mapping) or set(saved) != set(params):
        raise InvalidArgumentError("state.params", saved, f"the parameters of {what}: a mapping of "
                                                          f"{sorted(params)}")
    for name, value in params.items():
        if _canon(saved[name]) != _canon(value):
            raise InvalidArgumentError(f"state.params.{name}", saved[name], (
                f"{name}={value!r}, this trigger's: a state is taken only by a trigger of the parameters "
                "that saved it (its counts mean something else with another one)"))
    return {k: v for k, v in state.items() if k != PARAMS}


def is_number(v: Any) -> bool:
    """An int or float, not a bool (NaN included)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_finite(v: Any) -> bool:
    """A finite int or float, not a bool."""
    return is_number(v) and math.isfinite(v)


def is_count(v: Any) -> bool:
    """An int >= 0, not a bool."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def is_keys(v: Any) -> bool:
    """A list of ints (store keys), no bools."""
    return isinstance(v, list) and all(isinstance(k, int) and not isinstance(k, bool) for k in v)


def with_params(trigger: Any, state: Any) -> Any:
    """``state`` of a format without ``"params"`` given those of ``trigger`` (and of its parts,
    nested: a composite's ``"parts"``, a drift trigger's ``"warmup_trigger"``), for a caller that
    knows by other means that ``trigger`` has the parameters of the trigger that saved it (the
    online pipeline compares the whole trigger configuration it saved with the state). A trigger
    whose fresh state records no parameters (a user trigger) gets none; anything that is not a
    state of that shape is returned as it is, for the trigger's own checks."""
    if not isinstance(state, Mapping) or PARAMS in state:
        return state
    fresh = trigger.state()
    if not isinstance(fresh, Mapping) or PARAMS not in fresh:
        return state
    out = {PARAMS: trigger._state_params(), **state}
    parts = trigger._parts()
    if isinstance(state.get("parts"), list) and len(state["parts"]) == len(parts):
        out["parts"] = [with_params(t, s) for t, s in zip(parts, state["parts"])]
    if "warmup_trigger" in state and len(parts) == 1:
        out["warmup_trigger"] = with_params(parts[0], state["warmup_trigger"])
    return out
