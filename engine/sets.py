"""Set operations on sorted int64 key arrays, and "latest value per key as of version N".

The key arrays of a store snapshot are sorted ascending, so membership is a merge (linear) rather
than a hash join. ``right``-hand sets must be sorted ascending (non-decreasing); this is checked,
at the cost of one read. Left-hand arrays of :func:`isin_sorted` may be in any order (each element
is then binary-searched); :func:`semi_join` and :func:`anti_join` keep the left array's order and
multiplicity, so they work chunk by chunk: the concatenation of the per-chunk results is the result
for the concatenated chunks.

Example
-------
>>> import numpy as np
>>> from engine import anti_join, semi_join, union, latest_per_key
>>> a, b = np.array([1, 3, 5, 7]), np.array([3, 4, 7])
>>> semi_join(a, b).tolist(), anti_join(a, b).tolist(), union(a, b).tolist()
([3, 7], [1, 5], [1, 3, 4, 5, 7])
>>> r = latest_per_key([1, 2, 1, 2], [1, 1, 3, 5], [10.0, 20.0, 11.0, 21.0], as_of=4)
>>> r.keys.tolist(), r.versions.tolist(), r.values.tolist()
([1, 2], [3, 1], [11.0, 20.0])
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba import njit, prange

from engine._blocks import PARALLEL_ROWS, n_blocks
from engine._search import first_unsorted, isin_sorted_numpy
from engine._validate import as_int64_1d, check_int, check_same_length, describe
from engine.errors import EngineInputError

__all__ = [
    "LatestPerKey",
    "LatestValues",
    "anti_join",
    "isin_sorted",
    "latest_per_key",
    "semi_join",
    "union",
]

@njit(cache=True)
def _first_unsorted_block(a, b, nb):  # type: ignore[no-untyped-def]
    n = a.shape[0]
    for i in range(max(1, (b * n) // nb), ((b + 1) * n) // nb):
        if a[i] < a[i - 1]:
            return i
    return -1


@njit(cache=True, parallel=True)
def _first_unsorted_par(a, first):  # type: ignore[no-untyped-def]
    nb = first.shape[0]
    for b in prange(nb):
        first[b] = _first_unsorted_block(a, b, nb)


@njit(cache=True)
def _first_unsorted(a):  # type: ignore[no-untyped-def]
    """Smallest i with a[i] < a[i - 1], or -1."""
    nb = n_blocks(a.shape[0], PARALLEL_ROWS)
    if nb == 1:
        return _first_unsorted_block(a, 0, 1)
    first = np.full(nb, -1, dtype=np.int64)
    _first_unsorted_par(a, first)
    for b in range(nb):
        if first[b] >= 0:
            return first[b]
    return -1


# Inputs with fewer elements than this (values and keys together) take the NumPy path
# (engine._search): NumPy answers them within a millisecond or two of the kernels, and never waits
# for a kernel to compile or load from Numba's cache (docs/PERFORMANCE.md).
NUMPY_BELOW = 1 << 18


def _sorted_arg(name: str, x: Any) -> np.ndarray:
    a = as_int64_1d(name, x)
    if a.shape[0] < 2:
        bad = -1
    elif a.shape[0] < NUMPY_BELOW:
        bad = first_unsorted(a)
    else:
        bad = _first_unsorted(a)
    if bad >= 0:
        raise EngineInputError(f"{name}[{bad}]", int(a[bad]),
                               f"sorted ascending keys ({name}[{bad - 1}]={int(a[bad - 1])})")
    return a


@njit(cache=True)
def _isin_merge_block(a, b, out, blk, nb):  # type: ignore[no-untyped-def]
    n = a.shape[0]
    lo = (blk * n) // nb
    hi = ((blk + 1) * n) // nb
    if lo == hi:
        return
    j = np.searchsorted(b, a[lo])
    m = b.shape[0]
    for i in range(lo, hi):
        v = a[i]
        steps = 0
        while j < m and b[j] < v:
            j += 1
            steps += 1
            if steps == 16:  # a long gap: gallop by binary search instead
                j += np.searchsorted(b[j:], v)
                break
        if j == m:
            break
        out[i] = b[j] == v


@njit(cache=True, parallel=True)
def _isin_merge_par(a, b, out, nb):  # type: ignore[no-untyped-def]
    for blk in prange(nb):
        _isin_merge_block(a, b, out, blk, nb)


@njit(cache=True)
def _isin_merge(a, b):  # type: ignore[no-untyped-def]
    """Membership of sorted ``a`` in sorted ``b``: blocks of ``a`` merge against ``b`` in parallel."""
    n = a.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    if n == 0 or b.shape[0] == 0:
        return out
    nb = n_blocks(n, PARALLEL_ROWS)
    if nb == 1:
        _isin_merge_block(a, b, out, 0, 1)
    else:
        _isin_merge_par(a, b, out, nb)
    return out


@njit(cache=True)
def _isin_search_block(a, b, out, blk, nb):  # type: ignore[no-untyped-def]
    n = a.shape[0]
    m = b.shape[0]
    for i in range((blk * n) // nb, ((blk + 1) * n) // nb):
        j = np.searchsorted(b, a[i])
        out[i] = j < m and b[j] == a[i]


@njit(cache=True, parallel=True)
def _isin_search_par(a, b, out, nb):  # type: ignore[no-untyped-def]
    for blk in prange(nb):
        _isin_search_block(a, b, out, blk, nb)


@njit(cache=True)
def _isin_search(a, b):  # type: ignore[no-untyped-def]
    """Membership of any-order ``a`` in sorted ``b`` by binary search."""
    n = a.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    if b.shape[0] == 0:
        return out
    nb = n_blocks(n, PARALLEL_ROWS // 8)  # a binary search is worth several merge steps
    if nb == 1:
        _isin_search_block(a, b, out, 0, 1)
    else:
        _isin_search_par(a, b, out, nb)
    return out


def isin_sorted(values: Any, sorted_keys: Any) -> np.ndarray:
    """Boolean mask: which ``values`` occur in ``sorted_keys`` (like ``np.isin``).

    ``sorted_keys`` must be sorted ascending; ``values`` may be in any order (sorted values take
    the linear merge path). Inputs under :data:`NUMPY_BELOW` elements in all are answered by
    NumPy, without compiling a kernel.

    >>> isin_sorted([5, 1, 4], [1, 2, 5]).tolist()
    [True, True, False]
    """
    a = as_int64_1d("values", values)
    b = _sorted_arg("sorted_keys", sorted_keys)
    if a.shape[0] + b.shape[0] < NUMPY_BELOW:
        return isin_sorted_numpy(a, b)
    if a.shape[0] > 1 and _first_unsorted(a) >= 0:
        return _isin_search(a, b)  # type: ignore[no-any-return]
    return _isin_merge(a, b)  # type: ignore[no-any-return]


def semi_join(left: Any, right: Any) -> np.ndarray:
    """The elements of sorted ``left`` that occur in sorted ``right`` (left's order, multiplicity)."""
    a = _sorted_arg("left", left)
    return a[_isin_merge(a, _sorted_arg("right", right))]


def anti_join(left: Any, right: Any) -> np.ndarray:
    """The elements of sorted ``left`` that do not occur in sorted ``right``."""
    a = _sorted_arg("left", left)
    return a[~_isin_merge(a, _sorted_arg("right", right))]


@njit(cache=True)
def _union(a, b):  # type: ignore[no-untyped-def]
    out = np.empty(a.shape[0] + b.shape[0], dtype=np.int64)
    i = 0
    j = 0
    w = 0
    na = a.shape[0]
    nb = b.shape[0]
    while i < na or j < nb:
        if j >= nb or (i < na and a[i] <= b[j]):
            v = a[i]
        else:
            v = b[j]
        if w == 0 or out[w - 1] != v:
            out[w] = v
            w += 1
        while i < na and a[i] == v:
            i += 1
        while j < nb and b[j] == v:
            j += 1
    return out[:w].copy()


def union(left: Any, right: Any) -> np.ndarray:
    """Sorted unique union of two sorted key arrays (``np.union1d`` by a linear merge)."""
    return _union(_sorted_arg("left", left), _sorted_arg("right", right))  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------ latest per key


class LatestValues(NamedTuple):
    """The latest row per key: keys ascending, and for each its version, row position and value."""

    keys: np.ndarray
    versions: np.ndarray
    positions: np.ndarray
    values: np.ndarray | None


@njit(cache=True)
def _latest(keys, versions, positions, order):  # type: ignore[no-untyped-def]
    """Indices (into the inputs) of the winner per key: highest version, then highest position.

    ``order`` visits the rows sorted by key (any order within a key).
    """
    n = order.shape[0]
    out = np.empty(n, dtype=np.int64)
    w = 0
    s = 0
    while s < n:
        best = order[s]
        k = keys[best]
        e = s + 1
        while e < n and keys[order[e]] == k:
            r = order[e]
            vr = versions[r]
            vb = versions[best]
            if vr > vb or (vr == vb and positions[r] > positions[best]):
                best = r
            e += 1
        out[w] = best
        w += 1
        s = e
    return out[:w].copy()


def _latest_rows(keys: np.ndarray, versions: np.ndarray, positions: np.ndarray) -> np.ndarray:
    if keys.shape[0] > 1 and _first_unsorted(keys) >= 0:
        order = np.argsort(keys, kind="stable")
    else:
        order = np.arange(keys.shape[0], dtype=np.int64)
    return _latest(keys, versions, positions, order)  # type: ignore[no-any-return]


def _latest_inputs(
    keys: Any, versions: Any, values: Any, as_of: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    k = as_int64_1d("keys", keys)
    v = as_int64_1d("versions", versions)
    check_same_length("versions", v, k.shape[0], "keys")
    vals = None
    if values is not None:
        vals = np.asarray(values)
        if vals.ndim == 0:
            raise EngineInputError("values", describe(vals), "an array with one row per key")
        check_same_length("values", vals, k.shape[0], "keys")
    rows = np.arange(k.shape[0], dtype=np.int64)
    if as_of is not None:
        check_int("as_of", as_of, minimum=None)
        rows = np.flatnonzero(v <= as_of)
    return k, v, rows, vals


def latest_per_key(keys: Any, versions: Any, values: Any = None, *, as_of: int | None = None) -> LatestValues:
    """For each key, the row with the highest version ``<= as_of`` (all rows when ``None``).

    Ties (same key and version) go to the later row. ``values`` may be any array with one row per
    key (1-D scores, 2-D embeddings); without it ``values`` is ``None`` and ``positions`` tell the
    caller which rows won.
    """
    k, v, rows, vals = _latest_inputs(keys, versions, values, as_of)
    win = rows[_latest_rows(k[rows], v[rows], rows)]
    return LatestValues(k[win], v[win], win, None if vals is None else vals[win])


class LatestPerKey:
    """Streaming :func:`latest_per_key` over chunks; the result equals the one-shot call.

    Holds one row per distinct key seen (plus one chunk). ``positions`` are global row numbers.

    Example
    -------
    >>> acc = LatestPerKey(as_of=4)
    >>> acc.update([1, 2], [1, 1], [10.0, 20.0])
    >>> acc.update([1, 2], [3, 5], [11.0, 21.0])
    >>> acc.result().values.tolist()
    [11.0, 20.0]
    """

    def __init__(self, *, as_of: int | None = None) -> None:
        self.as_of = None if as_of is None else check_int("as_of", as_of, minimum=None)
        self._keys = np.empty(0, dtype=np.int64)
        self._versions = np.empty(0, dtype=np.int64)
        self._positions = np.empty(0, dtype=np.int64)
        self._values: np.ndarray | None = None
        self._n_seen = 0

    def update(self, keys: Any, versions: Any, values: Any = None) -> None:
        """Feed one chunk of ``(key, version[, value])`` rows."""
        k, v, rows, vals = _latest_inputs(keys, versions, values, self.as_of)
        if (vals is None) != (self._values is None) and self._n_seen:
            raise EngineInputError("values", describe(vals), "values in every chunk or in none")
        all_k = np.concatenate([self._keys, k[rows]])
        all_v = np.concatenate([self._versions, v[rows]])
        all_p = np.concatenate([self._positions, rows + self._n_seen])
        win = _latest_rows(all_k, all_v, all_p)
        if vals is not None:
            old = self._values if self._values is not None else vals[:0]
            self._values = np.concatenate([old, vals[rows]])[win]
        self._keys, self._versions, self._positions = all_k[win], all_v[win], all_p[win]
        self._n_seen += k.shape[0]

    def result(self) -> LatestValues:
        """The latest row per key seen so far, keys ascending."""
        return LatestValues(self._keys, self._versions, self._positions, self._values)
