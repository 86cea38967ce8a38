"""Seeded sampling without replacement: uniform, weighted (Efraimidis-Spirakis), reservoir (L).

Randomness
----------
Uniform and weighted sampling give every row its own random number ``u = SplitMix64(seed, key)``
(``key`` = the row's key, or its position when no keys are given) and keep the ``k`` best rows by
``u`` (uniform) or by ``log(u) / w`` (Efraimidis & Spirakis 2006, the A-ES keys ``u ** (1/w)`` in
log space). The sample therefore does not depend on chunking, thread count or row order, and a
streaming sampler fed any chunking returns exactly the one-shot sample. Keys must be unique for the
sample to be uniform (equal keys get equal random numbers).

Reservoir sampling (Li's Algorithm L, 1994) consumes a sequential seeded stream; its state is
carried across chunks, so it too gives the same sample for any chunking of the same stream.

Weights
-------
Weights must be finite and ``>= 0``. A zero weight means "never pick"; NaN, inf and negative
weights are rejected. Asking for more rows than there are positive weights returns all of them.
Sample sizes ``k`` may be any Python int ``>= 0``.

Importance weights ``sum(w) / (n w_i)`` are computed from the weights scaled by the largest one,
so any finite weights give a finite total. A chosen row whose weight is so small next to the
largest one (a subnormal weight, or a ratio below about ``1e-308``) that its importance weight
exceeds the float64 range raises :class:`EngineInputError` naming ``weights[i]`` (its position,
or its key in the streaming sampler); a tiny weight is otherwise sampled like any positive one.

Example
-------
>>> import numpy as np
>>> from engine import uniform_sample, weighted_sample
>>> uniform_sample(10, 3, seed=1).tolist()
[0, 2, 4]
>>> idx, iw = weighted_sample([1.0, 0.0, 2.0, 1.0], 2, seed=1, return_importance=True)
>>> idx.tolist(), iw.tolist()
([0, 2], [1.0, 0.5])
"""

from __future__ import annotations

import math
from typing import Any, Literal, overload

import numpy as np
from numba import njit, prange

from engine._blocks import PARALLEL_ROWS, n_blocks
from engine._random import next_u64, seed_state, u01_open, u64_to_open01
from engine._rank import MODE_ES, MODE_HASH
from engine._lazy import LazyBest
from engine._ranked import _read_only, merge_best, run_select
from engine._validate import as_float_1d, as_int64_1d, check_int, check_seed, check_same_length
from engine.errors import EngineInputError

__all__ = [
    "Reservoir",
    "UniformSampler",
    "WeightedSampler",
    "reservoir_sample",
    "uniform_sample",
    "weighted_sample",
]



_I64_MAX = 2**63 - 1


def _seed(seed: Any) -> int:
    return check_seed("seed", seed)


def _rows(name: str, n: Any) -> int:
    """A row count: an integer in ``[0, 2**63 - 1]``."""
    n = check_int(name, n)
    if n > _I64_MAX:
        raise EngineInputError(name, n, "an integer in [0, 2**63 - 1]")
    return n


def _keys_or_none(keys: Any, n: int, other: str) -> np.ndarray | None:
    if keys is None:
        return None
    kk = as_int64_1d("keys", keys)
    check_same_length("keys", kk, n, other)
    return kk


@njit(cache=True, parallel=True)
def _first_invalid_par(w, bad):  # type: ignore[no-untyped-def]
    nb = bad.shape[0]
    for b in prange(nb):
        bad[b] = _first_invalid_block(w, b, nb)


@njit(cache=True)
def _first_invalid_weight(w):  # type: ignore[no-untyped-def]
    """Index of the first weight that is not finite and >= 0, or -1 (one vectorized pass)."""
    nb = n_blocks(w.shape[0], PARALLEL_ROWS)
    if nb == 1:
        return _first_invalid_block(w, 0, 1)
    bad = np.full(nb, -1, dtype=np.int64)
    _first_invalid_par(w, bad)
    for b in range(nb):
        if bad[b] >= 0:
            return bad[b]
    return -1


@njit(cache=True)
def _first_invalid_block(w, b, nb):  # type: ignore[no-untyped-def]
    n = w.shape[0]
    lo = (b * n) // nb
    hi = ((b + 1) * n) // nb
    v = w[lo:hi]
    ok = True
    for j in range(hi - lo):  # vectorized: no early exit
        ok &= (v[j] >= 0.0) & (v[j] != np.inf)
    if not ok:
        for j in range(hi - lo):
            if not (v[j] >= 0.0 and v[j] != np.inf):
                return lo + j
    return -1


def _check_weights(weights: Any) -> np.ndarray:
    w = as_float_1d("weights", weights, keep_float32=False)
    bad = _first_invalid_weight(_read_only(w))  # one compiled signature, as the selection kernel
    if bad >= 0:
        raise EngineInputError(f"weights[{bad}]", float(w[bad]), "finite weights >= 0 (0 = never pick)")
    return w


# --------------------------------------------------------------------------------------- uniform


def uniform_sample(n: int, k: int, *, seed: int, keys: Any = None) -> np.ndarray:
    """``min(k, n)`` distinct positions drawn uniformly from ``range(n)``, ascending.

    Parameters
    ----------
    n:
        Population size.
    k:
        Sample size, ``>= 0``.
    seed:
        Any integer.
    keys:
        Optional int64 keys of the ``n`` rows; the sample then depends on the keys, not on the
        row order (the same key is in or out whatever else is in the population, given ``k``).

    Example
    -------
    >>> uniform_sample(5, 10, seed=0).tolist()
    [0, 1, 2, 3, 4]
    """
    n = _rows("n", n)
    k = min(check_int("k", k), n)  # k > n returns every row (and a huge k does not overflow)
    kk = _keys_or_none(keys, n, "n")
    pos, _, _ = run_select(n, np.array([k]), mode=MODE_HASH, state=seed_state(_seed(seed)), keys=kk)
    return pos


class _Streaming:
    """Shared state of the streaming samplers: the best ``k`` (rank, key) pairs so far, merged
    lazily (:class:`engine._lazy.LazyBest`)."""

    def __init__(self, k: int, seed: int) -> None:
        self.k = check_int("k", k)
        self.seed = _seed(seed)
        self._state = seed_state(self.seed)
        self._best = LazyBest(self.k)
        self._n_seen = 0

    @property
    def n_seen(self) -> int:
        """Rows fed so far (the next chunk's first default key)."""
        return self._n_seen

    def _push(self, rank: np.ndarray, key: np.ndarray, n_rows: int, extra: np.ndarray | None = None) -> None:
        self._n_seen += n_rows
        self._best.push(rank, key, extra)


class UniformSampler(_Streaming):
    """Streaming uniform sample of exactly ``min(k, rows seen)`` rows, in ``O(k + chunk)`` memory.

    The result equals ``uniform_sample`` over all rows (with the same keys) for any chunking.

    Example
    -------
    >>> s = UniformSampler(3, seed=1)
    >>> s.update(n=4); s.update(n=6)
    >>> s.result().tolist() == uniform_sample(10, 3, seed=1).tolist()
    True
    """

    def __init__(self, k: int, *, seed: int) -> None:
        super().__init__(k, seed)

    def update(self, keys: Any = None, *, n: int | None = None) -> None:
        """Feed one chunk, given by its int64 ``keys`` or, without keys, its row count ``n``
        (rows are then keyed by global position)."""
        if (keys is None) == (n is None):
            raise EngineInputError("keys", keys, "exactly one of keys and n")
        kk = None if keys is None else as_int64_1d("keys", keys)
        rows = _rows("n", n) if kk is None else kk.shape[0]
        _, rank, key = run_select(rows, np.array([min(self.k, rows)]), mode=MODE_HASH, state=self._state, keys=kk,
                                  offset=self._n_seen, floor=self._best.floor())
        self._push(rank, key, rows)

    def result(self, k: int | None = None) -> np.ndarray:
        """The sampled keys (global positions for keyless chunks), ascending.

        With ``k`` (at most the sampler's own ``k``): the sample a sampler of size ``k`` fed the
        same chunks would return, so one pass can sample for a size known only at its end
        (e.g. a share of the rows counted in that pass) given an upper bound of that size.

        >>> s = UniformSampler(5, seed=1)
        >>> s.update(n=10)
        >>> s.result(3).tolist() == uniform_sample(10, 3, seed=1).tolist()
        True
        """
        self._best.merge()
        kept = self._best.key
        if k is None or k >= kept.shape[0]:
            if k is not None and check_int("k", k) > self.k:
                raise EngineInputError("k", k, f"at most the sampler's size k={self.k}")
            return np.sort(kept)
        k = check_int("k", k)
        return np.sort(kept[merge_best(self._best.rank, kept, k)])


# -------------------------------------------------------------------------------------- weighted


def _weighted_ranks(
    w: np.ndarray, k: int, state: np.uint64, keys: np.ndarray | None, offset: int,
    floor: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return run_select(w.shape[0], np.array([min(k, w.shape[0])]), mode=MODE_ES, vals=w, state=state,
                      keys=keys, offset=offset, floor=floor)


@overload
def weighted_sample(
    weights: Any, k: int, *, seed: int, keys: Any = ..., return_importance: Literal[False] = ...
) -> np.ndarray: ...
@overload
def weighted_sample(
    weights: Any, k: int, *, seed: int, keys: Any = ..., return_importance: Literal[True]
) -> tuple[np.ndarray, np.ndarray]: ...
def weighted_sample(
    weights: Any, k: int, *, seed: int, keys: Any = None, return_importance: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``min(k, #positive weights)`` distinct positions, drawn with probability proportional to
    ``weights`` without replacement (successive sampling, as ``Generator.choice(replace=False, p=)``),
    ascending.

    Parameters
    ----------
    weights:
        Finite weights ``>= 0``; zero means never pick.
    k:
        Sample size, ``>= 0``.
    seed:
        Any integer.
    keys:
        Optional int64 keys: the random number of a row then follows its key, not its position.
    return_importance:
        Also return the importance weights ``1 / (n p_i)`` of the chosen rows, with
        ``p_i = w_i / sum(w)`` and ``n = len(weights)`` (the usual with-replacement correction;
        uniform weights give 1.0). Always finite: a chosen row whose importance weight would
        exceed the float64 range raises :class:`EngineInputError` naming ``weights[i]``.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        int64 positions, and float64 importance weights in the same order when asked.
    """
    w = _check_weights(weights)
    k = check_int("k", k)
    kk = _keys_or_none(keys, w.shape[0], "weights")
    pos, _, _ = _weighted_ranks(w, k, seed_state(_seed(seed)), kk, 0)
    if not return_importance:
        return pos
    top, scaled = _scaled_total(w)
    return pos, _importance(w[pos], top, scaled, w.shape[0], pos)


def _scaled_total(w: np.ndarray) -> tuple[float, float]:
    """``(m, s)`` with ``sum(w) = m * s``: ``(1, sum(w))`` when that sum is finite (one pass),
    else the largest weight and ``sum(w / m)`` (``s <= len(w)``), which does not overflow."""
    with np.errstate(over="ignore"):  # an overflowing sum is the case handled below
        total = float(w.sum())
    if math.isfinite(total):
        return (1.0, total) if total > 0.0 else (0.0, 0.0)
    top = float(w.max())
    return top, float((w / top).sum())


def _add_total(top: float, scaled: float, w: np.ndarray) -> tuple[float, float]:
    """The running total ``(m, s)`` of :func:`_scaled_total` with the weights ``w`` added,
    rescaled to the new largest weight when ``w`` holds a larger one."""
    part_top, part = _scaled_total(w)
    if part_top > top:
        return part_top, scaled * (top / part_top) + part
    if part_top <= 0.0:
        return top, scaled
    total = scaled + part * (part_top / top)
    if math.isfinite(total):
        return top, total
    # two finite plain sums (scale 1) whose sum overflows: rescale by the larger of them, which
    # is at least every weight so far (so, as for a largest weight, the scaled sum is small)
    m = max(scaled, part)
    return m, scaled / m + part / m


def _importance(w_sel: np.ndarray, top: float, scaled: float, n: int, where: np.ndarray) -> np.ndarray:
    """Importance weights ``sum(w) / (n w_i) = (s / n) / (w_i / m)`` of the chosen weights;
    ``where`` names the chosen rows (positions or keys) in an error."""
    if w_sel.shape[0] == 0:
        return np.empty(0, dtype=np.float64)
    with np.errstate(over="ignore", divide="ignore", under="ignore"):
        if top == 1.0:  # the total is sum(w) itself: the plain formula, as every peer computes it
            nw = n * w_sel  # overflows for a weight near the float64 maximum: then divide in turn
            out = np.asarray(np.where(np.isfinite(nw), scaled / nw, (scaled / n) / w_sel), dtype=np.float64)
        else:
            out = np.asarray((scaled / n) / (w_sel / top), dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        fmax = np.finfo(np.float64).max
        least = top * (scaled / n) / fmax  # sum(weights) / (n * fmax), without forming the sum
        # ``top`` is the scale of the running total (1 while the plain sum is finite), not the
        # largest weight: the bound is stated through the sum and n
        raise EngineInputError(
            f"weights[{int(where[i])}]", float(w_sel[i]),
            f"0 or a weight of at least {least:.3g} (sum(weights) / (n * {fmax:.3g}), n = {n} "
            "rows), so that its importance weight sum(weights) / (n * weight) is a finite float64")
    return out


class WeightedSampler(_Streaming):
    """Streaming weighted sampling without replacement in ``O(k + chunk)`` memory.

    The sample equals ``weighted_sample`` over all rows for any chunking; importance weights agree
    up to the rounding of the running weight total.

    Example
    -------
    >>> s = WeightedSampler(2, seed=1)
    >>> s.update([1.0, 0.0]); s.update([2.0, 1.0])
    >>> s.result().tolist()
    [0, 2]
    """

    def __init__(self, k: int, *, seed: int) -> None:
        super().__init__(k, seed)
        self._top = 0.0  # the largest weight so far
        self._scaled = 0.0  # the sum of the weights so far divided by ``_top``

    def update(self, weights: Any, keys: Any = None) -> None:
        """Feed one chunk of weights (keys default to global positions)."""
        w = _check_weights(weights)
        kk = _keys_or_none(keys, w.shape[0], "weights")
        pos, rank, key = _weighted_ranks(w, self.k, self._state, kk, self._n_seen, self._best.floor())
        self._top, self._scaled = _add_total(self._top, self._scaled, w)
        self._push(rank, key, w.shape[0], w[pos])

    @overload
    def result(self, *, return_importance: Literal[False] = ...) -> np.ndarray: ...
    @overload
    def result(self, *, return_importance: Literal[True]) -> tuple[np.ndarray, np.ndarray]: ...
    def result(self, *, return_importance: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The sampled keys ascending (and their importance weights ``1 / (n p_i)``; a chosen
        row whose importance weight exceeds the float64 range raises :class:`EngineInputError`
        naming ``weights[key]``)."""
        self._best.merge()
        order = np.argsort(self._best.key, kind="stable")
        keys = self._best.key[order]
        if not return_importance:
            return keys
        w = self._best.val if self._best.val is not None else np.empty(0, np.float64)
        return keys, _importance(w[order], self._top, self._scaled, self._n_seen, keys)


# ------------------------------------------------------------------------------------- reservoir


@njit(cache=True)
def _skip(rng, w):  # type: ignore[no-untyped-def]
    """Algorithm L's gap: floor(log(u) / log(1 - W)) + 1 (capped to stay in int64)."""
    g = np.floor(np.log(u01_open(rng)) / np.log1p(-w)) + 1.0
    return np.int64(g) if g < 4.0e18 else np.int64(4e18)


@njit(cache=True)
def _reservoir_update(items, res, k, ist, fst, rng):  # type: ignore[no-untyped-def]
    """Feed ``items`` into the reservoir. ``ist = [seen, next]``, ``fst = [W]``, ``rng`` state."""
    seen = ist[0]
    nxt = ist[1]
    w = fst[0]
    n = items.shape[0]
    j = 0
    while j < n and seen + j < k:  # fill phase
        res[seen + j] = items[j]
        j += 1
        if seen + j == k:
            w = np.exp(np.log(u01_open(rng)) / k)
            nxt = k - 1 + _skip(rng, w)
    end = seen + n
    if k > 0 and end >= k:  # the reservoir is full: nxt is valid
        while nxt < end:
            slot = np.int64(u64_to_open01(next_u64(rng)) * k)
            res[slot] = items[nxt - seen]
            w *= np.exp(np.log(u01_open(rng)) / k)
            nxt += _skip(rng, w)
    ist[0] = end
    ist[1] = nxt
    fst[0] = w


class Reservoir:
    """Reservoir sampling with Li's Algorithm L over a stream of int64 chunks.

    Keeps a uniform sample of ``k`` items of an unbounded stream in ``O(min(k, items seen))``
    memory and ``O(k (1 + log(N/k)))`` random draws. The same stream in any chunking gives the same sample.

    Example
    -------
    >>> r = Reservoir(3, seed=7)
    >>> for chunk in ([10, 11, 12, 13], [14, 15], [16, 17, 18, 19]):
    ...     r.update(chunk)
    >>> r.result().tolist() == reservoir_sample(range(10, 20), 3, seed=7).tolist()
    True
    """

    def __init__(self, k: int, *, seed: int) -> None:
        self.k = check_int("k", k)
        self.seed = _seed(seed)
        # the kernel's k: a stream never holds 2**63 items, so a larger k keeps every item alike
        self._kernel_k = min(self.k, _I64_MAX)
        self._res = np.zeros(min(self.k, 1024), dtype=np.int64)  # grown as items arrive
        self._ist = np.zeros(2, dtype=np.int64)
        self._fst = np.zeros(1, dtype=np.float64)
        self._rng = np.array([seed_state(self.seed)], dtype=np.uint64)

    @property
    def n_seen(self) -> int:
        """Items fed so far."""
        return int(self._ist[0])

    def update(self, items: Any) -> None:
        """Feed one chunk of int64 items (e.g. keys)."""
        a = as_int64_1d("items", items)
        need = min(self.k, self.n_seen + a.shape[0])  # slots filled after this chunk
        if need > self._res.shape[0]:
            grown = np.zeros(min(self.k, max(need, 2 * self._res.shape[0])), dtype=np.int64)
            grown[: self._res.shape[0]] = self._res
            self._res = grown
        _reservoir_update(a, self._res, self._kernel_k, self._ist, self._fst, self._rng)

    def result(self) -> np.ndarray:
        """The sampled items (``min(k, n_seen)`` of them), ascending."""
        return np.sort(self._res[: min(self.k, self.n_seen)])


def reservoir_sample(items: Any, k: int, *, seed: int) -> np.ndarray:
    """One-shot Algorithm L over an int64 array (see :class:`Reservoir`); items ascending.

    >>> reservoir_sample([5, 6], 3, seed=0).tolist()
    [5, 6]
    """
    r = Reservoir(k, seed=seed)
    if not hasattr(items, "__len__"):
        try:
            items = np.fromiter(items, dtype=np.int64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise EngineInputError("items", items, "an iterable of integers") from exc
    r.update(items)
    return r.result()
