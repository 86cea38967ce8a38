"""Seeded random numbers that do not depend on NumPy's generator streams or on threading.

Two flavours, both built on SplitMix64 (Steele, Lea & Flood 2014), which passes BigCrush:

* **counter-based**: ``hash_key(state, key)`` is the ``key``-th output of the SplitMix64 sequence
  that starts at ``state``. Every row gets its own random number from its key alone, so results do
  not change with chunking, thread count or row order. Used by uniform and weighted sampling and by
  the ``uniform`` quota rule.
* **sequential**: ``next_u64(state)`` advances a one-element ``uint64`` array. Used where an
  algorithm consumes a stream (reservoir sampling, permutations, random features).

Seeds are integers in ``[0, 2**64 - 1]``, the 64-bit start of SplitMix64: the public functions
refuse any other (``EngineInputError`` naming ``seed``), since one taken modulo 2**64 would give
another seed's numbers (``-1`` those of ``2**64 - 1``).

The same arithmetic written with Python integers lives in ``tests/engine/naive.py``, so the kernels
that use it can be checked bit for bit. Results are a function of the seed alone and stay the same
across NumPy and Numba releases.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["hash_key", "next_u64", "seed_state", "u01_open", "u64_to_open01"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53
_BELOW_ONE = 1.0 - _TWO_M53  # the largest float64 below 1

_MASK64 = (1 << 64) - 1


@njit(cache=True, inline="always")
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def seed_state(seed: int) -> np.uint64:
    """The SplitMix64 start state for an integer seed in ``[0, 2**64 - 1]`` (the public functions
    refuse others with :func:`engine._validate.check_seed`: taken modulo 2**64 they would give
    another seed's numbers)."""
    z = (int(seed) + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return np.uint64(z ^ (z >> 31))


@njit(cache=True, inline="always")
def hash_key(state: np.uint64, key: np.int64) -> np.uint64:
    """The ``key``-th output (key taken as uint64) of the SplitMix64 sequence starting at ``state``."""
    return _mix(state + np.uint64(key) * _GOLDEN)


@njit(cache=True, inline="always")
def next_u64(state: np.ndarray) -> np.uint64:
    """Advance a one-element uint64 state array and return the next 64 random bits."""
    state[0] += _GOLDEN
    return _mix(state[0])


@njit(cache=True, inline="always")
def u64_to_open01(x: np.uint64) -> float:
    """Map 64 random bits to a float in the open interval (0, 1) (53-bit resolution).

    ``(2**53 - 1) + 0.5`` rounds (half to even) to ``2**53``, so the top 53-bit value would map
    to exactly 1.0: it is clamped to the largest float below 1, so ``int(u * n) < n`` for every
    ``n < 2**53`` (an index drawn this way stays in range). Every other value is unchanged.
    """
    return min((np.float64(np.int64(x >> _S11)) + 0.5) * _TWO_M53, _BELOW_ONE)  # via int64: cheap


@njit(cache=True, inline="always")
def u01_open(state: np.ndarray) -> float:
    """Next uniform float in (0, 1) from a sequential state."""
    return u64_to_open01(next_u64(state))
