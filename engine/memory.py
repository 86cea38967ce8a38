"""GDumb's greedy class-balanced memory (Prabhu et al., 2020) as one streaming kernel.

:func:`greedy_balanced` feeds a stream of ``(key, class)`` rows into a memory of at most
``memory`` slots: a row enters while there is room; when full, a row of a class holding fewer than
``memory / classes present`` slots replaces a uniformly random slot of the currently largest
class (ties: the smallest class code); other rows are dropped. Classes are int64 codes in
``[0, n_classes)`` (order them like their labels so ties go to the smallest label).

The state is plain arrays (the memory's keys and classes), so a caller can drop rows between
calls (deleted or erased keys) by masking them out. Random slots come from the engine's seeded
SplitMix64 stream (rejection sampling over the slots, so each slot of the class is equally
likely); ``tests/engine/naive.py`` holds the same algorithm in plain Python.

Example
-------
>>> import numpy as np
>>> from engine.memory import greedy_balanced
>>> keys, cls = greedy_balanced(np.empty(0, np.int64), np.empty(0, np.int64),
...                             np.arange(12), np.array([0] * 9 + [1] * 3), memory=6, seed=1)
>>> int((cls == 1).sum()), keys.size
(3, 6)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from engine._random import next_u64, seed_state, u64_to_open01
from engine._validate import as_int64_1d, check_int, check_seed, check_same_length
from engine.errors import EngineInputError

__all__ = ["greedy_balanced", "random_state"]


@njit(cache=True)
def _update(mem_keys, mem_cls, size, counts, keys, cls, memory, state):  # type: ignore[no-untyped-def]
    present = 0
    for c in range(counts.size):
        if counts[c] > 0:
            present += 1
    for i in range(keys.size):
        c = cls[i]
        if size < memory:
            mem_keys[size] = keys[i]
            mem_cls[size] = c
            size += 1
            if counts[c] == 0:
                present += 1
            counts[c] += 1
            continue
        n_classes = present + (1 if counts[c] == 0 else 0)
        if counts[c] >= memory / n_classes:
            continue
        largest = 0
        for j in range(counts.size):
            if counts[j] > counts[largest]:
                largest = j
        while True:  # a uniform slot of the largest class (it holds >= memory / n_classes slots)
            slot = np.int64(u64_to_open01(next_u64(state)) * size)
            if mem_cls[slot] == largest:
                break
        counts[largest] -= 1
        if counts[largest] == 0:
            present -= 1
        if counts[c] == 0:
            present += 1
        counts[c] += 1
        mem_keys[slot] = keys[i]
        mem_cls[slot] = c
    return size


def random_state(seed: int) -> np.ndarray:
    """A random stream for :func:`greedy_balanced`'s ``rng``: a one-element uint64 array that
    each call advances in place, so consecutive chunks of one stream, each fed with the same
    array, give the memory of one call over the whole stream (whatever the chunking)."""
    return np.array([seed_state(check_seed("seed", seed))], dtype=np.uint64)


def _check_rng(rng: Any) -> np.ndarray:
    if not (isinstance(rng, np.ndarray) and rng.dtype == np.uint64 and rng.shape == (1,)
            and rng.flags.writeable and rng.flags.c_contiguous):
        raise EngineInputError("rng", rng, "a writeable one-element uint64 array from "
                               "engine.memory.random_state(seed), or None to use seed")
    return rng


def greedy_balanced(mem_keys: Any, mem_classes: Any, keys: Any, classes: Any, *, memory: int,
                    n_classes: int | None = None, seed: int = 0,
                    rng: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Feed ``(keys, classes)`` into the memory ``(mem_keys, mem_classes)``; return the new memory.

    Parameters
    ----------
    mem_keys, mem_classes:
        The current memory (at most ``memory`` rows), e.g. the output of the previous call.
    keys, classes:
        The new rows in stream order; classes are int64 codes >= 0.
    memory:
        The memory size: any integer >= 1 (the returned memory holds at most the rows given, so
        a memory larger than that allocates nothing for the slots it cannot fill).
    n_classes:
        The number of class codes (default: one more than the largest code seen).
    seed:
        Seeds the choice of replaced slots (a fresh stream on every call).
    rng:
        Instead of ``seed``: a random stream from :func:`random_state`, advanced in place. Feed
        a stream in chunks with one such array and the memory does not depend on the chunking.
    """
    memory = check_int("memory", memory, minimum=1)
    mk = as_int64_1d("mem_keys", mem_keys)
    mc = as_int64_1d("mem_classes", mem_classes)
    check_same_length("mem_classes", mc, mk.size, "mem_keys")
    if mk.size > memory:
        raise EngineInputError("mem_keys", f"<{mk.size} rows>", f"at most memory={memory} rows")
    k = as_int64_1d("keys", keys)
    c = as_int64_1d("classes", classes)
    check_same_length("classes", c, k.size, "keys")
    top = max(int(mc.max()) if mc.size else -1, int(c.max()) if c.size else -1)
    if (mc.size and mc.min() < 0) or (c.size and c.min() < 0):
        raise EngineInputError("classes", "a negative code", "class codes >= 0")
    n = top + 1 if n_classes is None else check_int("n_classes", n_classes, minimum=top + 1)
    # A memory of at least every row given never replaces one (each row arrives while there is
    # room), so the kernel runs with the slots it can fill: the same result, and no allocation
    # (or int64 overflow) for a huge ``memory``.
    slots = min(memory, mk.size + k.size)
    buf_k = np.empty(slots, dtype=np.int64)
    buf_c = np.empty(slots, dtype=np.int64)
    buf_k[: mk.size] = mk
    buf_c[: mc.size] = mc
    counts = np.bincount(mc, minlength=n).astype(np.int64)
    state = random_state(seed) if rng is None else _check_rng(rng)
    size = _update(buf_k, buf_c, mk.size, counts, k, c, slots, state)
    return buf_k[:size].copy(), buf_c[:size].copy()
