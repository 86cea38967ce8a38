"""Where a value lies against the mean of past values shifted by an offset, as the decimals
they are written in (``0.9 - 0.3`` is ``0.6``), not as float64 arithmetic gives it
(``0.6000000000000001``): the rolling-average decisions of ``performance`` and ``data_drift``.

>>> above_mean(0.6, [0.9], -0.3), above_mean(0.6, [0.9], -0.3) == 0
(0, True)
>>> 0.9 - 0.3
0.6000000000000001
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction

import numpy as np

__all__ = ["above_mean"]

#: A float64 gap wider than this decides the comparison as it is: the mean of values in the
#: range compared here is off by far less (pairwise summation).
_CLEAR = 2.0**-30


def _exact(x: float) -> Fraction:
    """``x`` as the shortest decimal that reads back as it (``repr``), exactly."""
    return Fraction(Decimal(repr(float(x))))


def above_mean(value: float, past: Iterable[float], offset: float) -> int:
    """The sign of ``value - (mean(past) + offset)``: 1 above, 0 at, -1 below, each number taken
    as the shortest decimal it prints as (``repr``), so a value at the boundary in decimals is at
    it. ``past`` holds at least one number. An infinite number among them is compared as float64
    compares it (an infinite mean is above any finite value), and a NaN gap (``inf - inf``, or a
    NaN among them, ``past`` included) is 0.

    The float64 gap decides when it is clearly away from 0; only near 0 are the values summed
    as fractions (the past values once)."""
    arr = np.fromiter(past, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        # (divided first: a sum of values near the largest float would overflow)
        gap = (float(value) - float(np.sum(arr / arr.size))) - float(offset)
    scale = max(1.0, abs(float(value)), abs(float(offset)), float(np.abs(arr).max()))
    if math.isfinite(gap) and abs(gap) > _CLEAR * scale:
        return 1 if gap > 0 else -1
    if not (math.isfinite(float(value)) and math.isfinite(float(offset)) and bool(np.isfinite(arr).all())):
        return (gap > 0) - (gap < 0)  # infinities: as float64 has them (NaN: neither)
    mean = sum((_exact(p) for p in arr.tolist()), Fraction(0)) / arr.size
    exact = _exact(value) - (mean + _exact(offset))
    return (exact > 0) - (exact < 0)
