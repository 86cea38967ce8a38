"""Parameter checks shared by policy constructors; errors name the field and the valid range."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from modyn_store.core.errors import InvalidArgumentError

__all__ = [
    "check_bool",
    "check_choice",
    "check_float",
    "check_float_or_none",
    "check_int",
    "check_int_or_none",
    "check_scope",
    "parse_duration",
]


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int in ``[lo, hi]`` (bools rejected)."""
    return _check_int(name, value, lo, hi, optional=False)  # type: ignore[return-value]


def check_int_or_none(name: str, value: Any, lo: int | None = None,
                      hi: int | None = None) -> int | None:
    """``value`` as an int in ``[lo, hi]``, or ``None``."""
    return _check_int(name, value, lo, hi, optional=True)


def _check_int(name: str, value: Any, lo: int | None, hi: int | None, *,
               optional: bool) -> int | None:
    if value is None and optional:
        return None
    rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
    expected = f"an integer in {rng}" + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, int):
        if not (hasattr(value, "__index__") and not isinstance(value, bool)):
            raise InvalidArgumentError(name, value, expected)
        value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InvalidArgumentError(name, value, expected)
    return int(value)


def check_float(name: str, value: Any, lo: float | None = None, hi: float | None = None, *,
                lo_open: bool = False, hi_open: bool = False) -> float:
    """``value`` as a finite float in the interval (open or closed ends as given)."""
    return _check_float(name, value, lo, hi, lo_open, hi_open, False)  # type: ignore[return-value]


def check_float_or_none(name: str, value: Any, lo: float | None = None,
                        hi: float | None = None, *, lo_open: bool = False,
                        hi_open: bool = False) -> float | None:
    """``value`` as a finite float in the interval, or ``None``."""
    return _check_float(name, value, lo, hi, lo_open, hi_open, True)


def _check_float(name: str, value: Any, lo: float | None, hi: float | None, lo_open: bool,
                 hi_open: bool, optional: bool) -> float | None:
    if value is None and optional:
        return None
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    rng = f"{left}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{right}"
    expected = f"a finite number in {rng}" + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(name, value, expected)
    v = float(value)
    if not math.isfinite(v):
        raise InvalidArgumentError(name, value, expected)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise InvalidArgumentError(name, value, expected)
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise InvalidArgumentError(name, value, expected)
    return v


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise InvalidArgumentError(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise InvalidArgumentError(name, value, "True or False")
    return value


_UNITS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
          "d": 86400 * 10**9, "w": 7 * 86400 * 10**9}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h|d|w)\s*$")


def parse_duration(name: str, value: Any) -> float:
    """A duration: ``"90s"``, ``"15m"``, ``"1d"``, ``"2w"`` -> nanoseconds; a positive number is
    returned unchanged (in the unit of the event-time column).

    Example
    -------
    >>> parse_duration("every", "1h") == 3600 * 10**9
    True
    """
    if isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise InvalidArgumentError(
                name, value, "a positive duration like '90s', '15m', '1h', '1d', '2w' or a number"
            )
        ns = float(m.group(1)) * _UNITS[m.group(2)]
        if ns <= 0:
            raise InvalidArgumentError(name, value, "a positive duration")
        return ns
    return check_float(name, value, 0.0, lo_open=True)


def check_scope(name: str, value: Any) -> str | None:
    """A checkpoint or strategy name (a non-empty string), or ``None``."""
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidArgumentError(name, value, "a non-empty name or None")
    return value
