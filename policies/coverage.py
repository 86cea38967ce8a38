"""``Coverage``: a train set whose k-nearest-neighbour neighbourhoods cover the embedding space."""

from __future__ import annotations

from typing import Any

import numpy as np

from modyn_store.core._validate import check_int, check_name
from modyn_store.core.trainset import TrainSet
from policies._pick import check_size, target_size, trainset
from policies.base import SelectionContext, SelectionStrategy, register
from policies.near_duplicates import index_embeddings

__all__ = ["Coverage"]


@register("coverage")
class Coverage(SelectionStrategy):
    """Greedy maximum coverage of k-nearest-neighbour neighbourhoods in embedding space.

    Each eligible sample's neighbourhood is itself and its ``k`` nearest other samples (ties,
    e.g. duplicated embeddings: the smaller keys; a
    :class:`~modyn_store.core.vectors.VectorIndex`: exact below 50,000 samples, LanceDB IVF-PQ
    above). The strategy repeatedly takes the sample whose neighbourhood holds the most samples
    not yet covered (ties: the smallest key) until it has ``ratio`` / ``limit`` samples; once
    everything is covered, the rest are taken in key order from the uncovered-first ranking, so
    dense regions get one representative before any region gets a second. Memory: the
    neighbourhoods of every eligible sample (``n * (k + 1)`` keys).

    Parameters
    ----------
    ratio, limit:
        Share of the eligible samples and global size limit.
    k:
        Neighbours per neighbourhood, >= 1.
    embedding:
        The vector score holding the embeddings.

    Example
    -------
    >>> Coverage(limit=10).requires
    frozenset({'score:embedding'})
    """

    def __init__(self, ratio: float | None = None, limit: int | None = None, k: int = 10,
                 embedding: str = "embedding") -> None:
        self.ratio, self.limit = check_size(ratio, limit)
        self.k = check_int("k", k, 1)
        self.embedding = check_name("embedding", embedding)  # a vector score's name

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"limit": 10, "k": 3}, {"ratio": 0.2}]

    @property
    def requires(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({f"score:{self.embedding}"})

    def expected_size(self, n: int) -> int:
        """The train set size for ``n`` eligible samples."""
        return target_size(n, self.ratio, self.limit)

    def _select(self, ctx: SelectionContext) -> TrainSet:
        from modyn_store.core.vectors import VectorIndex

        keys, emb, _ = index_embeddings(ctx, self.embedding)
        n = keys.size
        m = self.expected_size(n)
        if m >= n:
            return trainset(keys, ctx)
        index = VectorIndex.from_arrays(keys, emb)
        try:
            nn, d2 = index.search(emb, k=min(self.k + 1, n))
        finally:
            index.close()
        hood = neighbourhoods(keys, nn, d2)
        return trainset(np.sort(keys[greedy_cover(hood, m)]), ctx)


def neighbourhoods(keys: np.ndarray, nn: np.ndarray, d2: np.ndarray | None = None) -> np.ndarray:
    """Row i: position i, then the positions of the nearest keys in ``nn[i]`` other than
    ``keys[i]`` (``nn``: ``[n, k + 1]`` nearest keys by distance, ties to the smaller key), ``k``
    of them. With exact duplicates a row may list smaller duplicate keys before its own key, or
    not list it at all: the own key is dropped wherever it is, else the last neighbour.
    Padding (key -1, distance inf in ``d2``) stands for the row itself; without ``d2`` a key
    -1 is taken as padding (a real key -1 then needs ``d2``)."""
    n = keys.size
    own = np.arange(n)
    pad = ~np.isfinite(d2) if d2 is not None else nn == -1
    pos = np.searchsorted(keys, np.where(pad, keys[:, None], nn))  # padding: the row itself
    others = np.argsort(pos == own[:, None], axis=1, kind="stable")[:, :max(nn.shape[1] - 1, 0)]
    return np.hstack([own[:, None], np.take_along_axis(pos, others, axis=1)])


def greedy_cover(hood: np.ndarray, m: int) -> np.ndarray:
    """Greedy maximum coverage: ``m`` rows of ``hood`` (row i = the positions sample i covers).

    Each step takes the row covering the most uncovered positions (ties: the lowest row); the
    gain of every row covering a newly covered position drops by one. ``O(m * n)`` time.
    """
    n = hood.shape[0]
    pairs = np.unique(np.repeat(np.arange(n, dtype=np.int64), hood.shape[1]) * n + hood.ravel())
    rows, cols = pairs // n, pairs % n  # (row, covered position), duplicates removed
    gain = np.bincount(rows, minlength=n).astype(np.int64)
    order = np.argsort(cols, kind="stable")
    covers_by = rows[order]
    starts = np.searchsorted(cols[order], np.arange(n + 1))
    hood_start = np.searchsorted(rows, np.arange(n + 1))
    covered = np.zeros(n, dtype=bool)
    taken = np.zeros(n, dtype=bool)
    chosen = np.empty(m, dtype=np.int64)
    for step in range(m):
        best = int(np.argmax(np.where(taken, -1, gain)))
        chosen[step] = best
        taken[best] = True
        mine = cols[hood_start[best]:hood_start[best + 1]]
        new = mine[~covered[mine]]
        covered[new] = True
        lens = starts[new + 1] - starts[new]
        if lens.sum():
            offs = np.repeat(starts[new] - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
            np.subtract.at(gain, covers_by[offs + np.arange(lens.sum())], 1)
    return chosen
