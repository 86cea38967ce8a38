"""Input coercion shared by the public wrappers.

Each helper takes the argument's public name, checks it, and returns a C-contiguous array of the
dtype the kernels are compiled for (a no-copy view when the input already is one). Bad input raises
:class:`~engine.errors.EngineInputError` naming the argument.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from engine.errors import EngineInputError

__all__ = [
    "as_float_1d",
    "as_float_2d",
    "as_int64_1d",
    "check_finite",
    "check_int",
    "check_seed",
    "check_same_length",
    "describe",
    "first_bad",
]

class _Described:
    """A short stand-in for an array in error messages (its repr is the description)."""

    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return self._text


def describe(x: Any) -> Any:
    """A value fit for an error message: arrays are summarised by dtype and shape."""
    if isinstance(x, np.ndarray):
        return _Described(f"<{x.dtype} array of shape {x.shape}>")
    return x


def _asarray(name: str, x: Any) -> np.ndarray:
    if isinstance(x, np.ma.MaskedArray) and np.ma.count_masked(x):
        # np.asarray drops the mask: the values hidden behind it would be ranked or sampled
        raise EngineInputError(name, f"{int(np.ma.count_masked(x))} masked entries",
                               "an array without masked entries")
    try:
        return np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise EngineInputError(name, describe(x), "an array-like of numbers") from exc


def _as_float(name: str, x: Any, ndim: int, shape_words: str, keep_float32: bool) -> np.ndarray:
    a = _asarray(name, x)
    if a.ndim != ndim:
        raise EngineInputError(name, describe(a), shape_words)
    if a.dtype.kind not in "iuf":
        raise EngineInputError(name, describe(a), "an array of real numbers (float or int)")
    if a.dtype == np.float32 and keep_float32:
        return np.ascontiguousarray(a)
    return np.ascontiguousarray(a, dtype=np.float64)


def as_float_1d(name: str, x: Any, *, keep_float32: bool = True) -> np.ndarray:
    """A 1-D float32 or float64 array; integers (and float16) become float64; bool and other
    kinds are rejected."""
    return _as_float(name, x, 1, "a 1-D array", keep_float32)


def as_float_2d(name: str, x: Any) -> np.ndarray:
    """A 2-D C-contiguous float32 or float64 array (integers and float16 become float64)."""
    return _as_float(name, x, 2, "a 2-D array (rows, columns)", True)


def as_int64_1d(name: str, x: Any) -> np.ndarray:
    """A 1-D int64 array; other integer dtypes are converted (uint64 only if it fits)."""
    a = _asarray(name, x)
    if a.ndim != 1:
        raise EngineInputError(name, describe(a), "a 1-D array")
    if a.size == 0 and a.dtype.kind == "f":  # np.asarray([]) is float64
        return np.empty(0, dtype=np.int64)
    if a.dtype.kind not in "iu":
        raise EngineInputError(name, describe(a), "an array of integers")
    if a.dtype == np.uint64 and a.size and int(a.max()) > np.iinfo(np.int64).max:
        raise EngineInputError(name, describe(a), "integers that fit in int64")
    return np.ascontiguousarray(a, dtype=np.int64)


def check_int(name: str, value: Any, *, minimum: int | None = 0, maximum: int | None = None) -> int:
    """A Python int from an int-like (bool and floats rejected), at least ``minimum`` (and at
    most ``maximum`` when given)."""
    if isinstance(value, (bool, np.bool_)):
        raise EngineInputError(name, value, "an integer")
    try:
        out = operator.index(value)
    except TypeError:
        raise EngineInputError(name, value, "an integer") from None
    if minimum is not None and out < minimum:
        raise EngineInputError(name, value, f"an integer >= {minimum}")
    if maximum is not None and out > maximum:
        raise EngineInputError(name, value, f"an integer in [{minimum}, {maximum}]")
    return out


#: the largest seed: seeds are the 64-bit start of SplitMix64 (see :mod:`engine._random`)
SEED_MAX = 2**64 - 1


def check_seed(name: str, value: Any) -> int:
    """``value`` as a seed: an integer in ``[0, 2**64 - 1]`` (bool and floats refused). Out of
    range it would wrap onto another seed (``-1`` is ``2**64 - 1``), so it is refused."""
    if isinstance(value, (bool, np.bool_)) or not hasattr(value, "__index__") or \
            not 0 <= operator.index(value) <= SEED_MAX:
        raise EngineInputError(name, value, "an integer in [0, 2**64 - 1]")
    return operator.index(value)


def check_same_length(name: str, a: np.ndarray, length: int, other: str) -> None:
    """Raise unless ``len(a) == length`` (the length of the argument called ``other``)."""
    if a.shape[0] != length:
        raise EngineInputError(name, describe(a), f"{length} rows, as many as {other}")


def first_bad(mask: np.ndarray) -> int:
    """Index of the first True in a boolean mask, or -1."""
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else -1


def check_finite(name: str, a: np.ndarray) -> None:
    """Raise naming the first non-finite element of ``a`` (any shape)."""
    if a.size and not np.isfinite(a).all():
        flat = a.reshape(-1)
        i = first_bad(~np.isfinite(flat))
        where = np.unravel_index(i, a.shape)
        index = ", ".join(str(int(j)) for j in where)
        raise EngineInputError(f"{name}[{index}]", float(flat[i]), "finite values (no NaN or inf)")
