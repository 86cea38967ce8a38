"""Top-k / bottom-k selection, one-shot and streaming, with deterministic ties.

Semantics
---------
* The result is ordered best first (``sorted=True``, the default) or by ascending position
  (``sorted=False``, cheaper).
* Ties on the score are broken by the secondary key: the row with the **smaller key** wins (for
  ``top_k`` and ``bottom_k`` alike). Without ``keys`` the key is the row's position.
* ``NaN`` is never selected; ``+inf`` and ``-inf`` are ordinary extreme values; ``-0.0 == 0.0``.
* ``k`` larger than the number of eligible (non-NaN) rows returns all eligible rows; ``k < 0`` is
  an error.

How it works
------------
Every row gets an int64 *rank* whose order is the score order (float bits made sortable, or the
int value, or a hash for sampling), and the kernel keeps the ``k`` largest ranks per group:

1. a stratified sample of up to 65,536 rows (one per ``n / 65,536`` rows, at a fixed
   pseudo-random offset in each stratum) estimates, per group, a rank threshold that a little
   more than ``k`` rows pass; the sample only steers speed, never the result;
2. one parallel pass over fixed blocks ranks rows 1,024 at a time into a per-thread buffer
   (vectorized), and copies out the positions and ranks at or above the threshold (blocks are
   written in order, so candidates come out in position order whatever the thread count). A
   group with too few candidates is recollected with no threshold (exact, rarely needed);
3. per group, ``np.partition`` finds the k-th rank and the ties at it are settled by key.

Streaming callers pass a *floor* (the worst rank they keep), so later chunks only copy the rows
that can still enter. Inputs below 65,536 rows run in the calling thread.

The kernel lives in ``engine._ranked`` and also serves sampling (``engine.sample``) and quotas
(``engine.quota``).

Example
-------
>>> import numpy as np
>>> from engine import top_k, bottom_k
>>> s = np.array([0.5, np.nan, 3.0, 0.5, -np.inf])
>>> top_k(s, 3).tolist()
[2, 0, 3]
>>> bottom_k(s, 2).tolist()
[4, 0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from engine._rank import MODE_BITS, MODE_INT, float_bits
from engine._lazy import LazyBest
from engine._ranked import run_select
from engine._validate import _asarray, as_float_1d, as_int64_1d, check_int, check_same_length, describe
from engine.errors import EngineInputError

__all__ = ["TopK", "bottom_k", "top_k"]




def score_ranks_input(name: str, scores: Any) -> np.ndarray:
    """Scores as float32, float64 or int64 (integers of other widths become int64)."""
    a = _asarray(name, scores)
    if a.dtype.kind in "iu":
        return as_int64_1d(name, a)
    return as_float_1d(name, a)


def _rank_args(s: np.ndarray, largest: bool) -> dict[str, Any]:
    if s.dtype.kind == "f":
        vals, *bits = float_bits(s)
        return {"mode": MODE_BITS, "vals": vals, "bits": tuple(bits), "negate": not largest}
    return {"mode": MODE_INT, "vals": s, "negate": not largest}


def _keys_arg(keys: Any, n: int) -> np.ndarray | None:
    if keys is None:
        return None
    kk = as_int64_1d("keys", keys)
    check_same_length("keys", kk, n, "scores")
    return kk


def top_k(
    scores: Any,
    k: int,
    *,
    keys: Any = None,
    largest: bool = True,
    sorted: bool = True,  # noqa: A002 - the name numpy/torch users expect
) -> np.ndarray:
    """Positions of the ``k`` largest (or smallest) scores.

    Parameters
    ----------
    scores:
        1-D float32, float64 or integer array. NaN rows are never selected.
    k:
        How many to select: any integer ``>= 0`` (a Python int of any size); more than the
        non-NaN rows returns all of them.
    keys:
        Optional int64 array (same length): the tie-break key, smaller wins. Default: position.
    largest:
        ``False`` selects the smallest scores (see :func:`bottom_k`).
    sorted:
        ``True``: best first. ``False``: ascending position (skips the final sort).

    Returns
    -------
    numpy.ndarray
        int64 positions into ``scores``.

    Example
    -------
    >>> top_k([1.0, 5.0, 5.0, 2.0], 2, keys=[9, 8, 7, 6]).tolist()
    [2, 1]
    """
    s = score_ranks_input("scores", scores)
    k = check_int("k", k)
    kk = _keys_arg(keys, s.shape[0])
    q = min(k, s.shape[0])  # k > n selects every row: no int64 overflow for a huge k
    pos, rank, tb = run_select(s.shape[0], np.array([q]), keys=kk, **_rank_args(s, largest))
    if sorted and pos.shape[0] > 1:
        pos = pos[np.lexsort((tb, ~rank))]
    return pos


def bottom_k(scores: Any, k: int, *, keys: Any = None, sorted: bool = True) -> np.ndarray:  # noqa: A002
    """Positions of the ``k`` smallest scores (NaN never selected; ties: smaller key first).

    >>> bottom_k([3.0, 1.0, 2.0], 2).tolist()
    [1, 2]
    """
    return top_k(scores, k, keys=keys, largest=False, sorted=sorted)


class TopK:
    """Streaming top-k over chunks in ``O(k + chunk)`` memory.

    Feeding the same rows in any chunking gives exactly the result of one :func:`top_k` call over
    all of them (the order on (score, key) is total). Float chunks are compared as float64.

    Parameters
    ----------
    k:
        How many rows to keep: any integer ``>= 0``.
    largest:
        ``False`` keeps the smallest scores.

    Example
    -------
    >>> acc = TopK(2)
    >>> acc.update([0.1, 0.9])
    >>> acc.update([0.5, 0.95], keys=[10, 11])
    >>> keys, scores = acc.result()
    >>> keys.tolist(), scores.tolist()
    ([11, 1], [0.95, 0.9])
    """

    def __init__(self, k: int, *, largest: bool = True) -> None:
        self.k = check_int("k", k)
        self.largest = bool(largest)
        self._kind: str | None = None
        self._best = LazyBest(self.k)  # chunk candidates are merged lazily
        self._n_seen = 0

    @property
    def n_seen(self) -> int:
        """Rows fed so far (the next chunk's first default key)."""
        return self._n_seen

    def update(self, scores: Any, keys: Any = None) -> None:
        """Feed one chunk; ``keys`` default to global row positions (``n_seen + i``)."""
        s = score_ranks_input("scores", scores)
        kind = "f" if s.dtype.kind == "f" else "i"
        if self._kind is not None and kind != self._kind:
            raise EngineInputError("scores", describe(s), "the same kind (float or int) as earlier chunks")
        if kind == "f":
            s = s.astype(np.float64, copy=False)
        kk = _keys_arg(keys, s.shape[0])
        self._kind = kind  # only once the chunk is accepted: a refused one sets no kind
        pos, rank, tb = run_select(
            s.shape[0], np.array([min(self.k, s.shape[0])]), keys=kk, offset=self._n_seen,
            floor=self._best.floor(), **_rank_args(s, self.largest)
        )
        self._n_seen += s.shape[0]
        self._best.push(rank, tb, s[pos])

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, scores)`` of the kept rows, best first."""
        b = self._best
        b.merge()
        order = np.lexsort((b.key, ~b.rank))
        return b.key[order], (b.val if b.val is not None else np.empty(0))[order]
