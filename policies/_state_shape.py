"""Checks of the plain data a trigger's ``load_state`` (and the online loop's restore) takes:
JSON numbers as Python reads them back, booleans excluded.

>>> is_count(3), is_count(True), is_keys([1, -2]), is_number(float("nan")), is_finite(float("nan"))
(True, False, True, True, False)
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["is_count", "is_finite", "is_keys", "is_number"]


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
