"""Exact rescaling of data whose squared distances would overflow or underflow float64.

Squared distances of values beyond about ``1e154`` overflow to inf and those of values below
about ``1e-154`` underflow to 0. Statistics that are scale-invariant (MMD with the median
bandwidth, the farthest-point order of k-center) are computed on the data multiplied by a
power of two instead, which is exact: :func:`power_of_two_scale`.

>>> import numpy as np
>>> (a,), e = power_of_two_scale(np.array([1e200, -3e199]))
>>> e, float(a[0]) * 2.0 ** e == 1e200
(665, True)
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SCALE_BITS", "power_of_two_scale"]

#: data whose largest magnitude lies outside ``2**+-SCALE_BITS`` is rescaled
SCALE_BITS = 400


def power_of_two_scale(*arrays: np.ndarray, bits: int = SCALE_BITS) -> tuple[tuple[np.ndarray, ...], int]:
    """``(arrays * 2**-e, e)``: ``e = 0`` (the arrays as given) when their largest magnitude lies
    within ``2**+-bits`` or is 0 or not finite, else the exponent that brings it into [0.5, 1)."""
    big = max((max(abs(float(a.max())), abs(float(a.min()))) for a in arrays if a.size), default=0.0)
    if big == 0.0 or not math.isfinite(big) or 2.0 ** -bits <= big <= 2.0 ** bits:
        return arrays, 0
    e = math.frexp(big)[1]
    return tuple(np.ldexp(a, -e) for a in arrays), e
