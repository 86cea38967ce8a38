"""``LikeMisclassified``: the samples the model gets wrong and their neighbours in embedding space."""

from __future__ import annotations

from typing import Any

import numpy as np

from modyn_store.core._validate import check_int, check_int_or_none, check_name
from modyn_store.core.trainset import TrainSet
from policies._pick import score_source, trainset
from policies.base import SelectionContext, SelectionStrategy, register
from policies.near_duplicates import index_embeddings

__all__ = ["MISCLASSIFIED_RTOL", "LikeMisclassified"]

#: a label probability ``exp(-loss)`` within this relative distance of the top probability
#: ``1 - least_confidence`` counts as the top (correctly classified): scores computed in float32
#: (a torch scoring pass, a user's own) are off by about 1e-7 to 1e-6 relative, and with a
#: tighter bound about half of the correctly classified rows of such a pass read as misclassified
MISCLASSIFIED_RTOL = 1e-5


def _scores(ctx: SelectionContext, name: str) -> tuple[np.ndarray, np.ndarray]:
    parts = list(score_source(ctx, name)())
    if not parts:
        return np.empty(0, np.int64), np.empty(0)
    return (np.concatenate([p[0] for p in parts]),
            np.concatenate([np.asarray(p[1], dtype=np.float64) for p in parts]))


@register("like_misclassified")
class LikeMisclassified(SelectionStrategy):
    """Samples like the ones the current model misclassifies.

    A sample is misclassified when its label's probability is below the top probability:
    ``exp(-loss) < (1 - least_confidence) * (1 - MISCLASSIFIED_RTOL)`` (scores ``loss`` and
    ``least_confidence``; the tolerance, 1e-5, absorbs float32 rounding of the scores). The
    ``seeds`` misclassified samples of highest loss, plus the ``k`` nearest neighbours of each in
    embedding space (a :class:`~modyn_store.core.vectors.VectorIndex`), form the train set; with
    ``limit`` the seeds come first (by loss), then neighbours by distance.

    Parameters
    ----------
    seeds:
        Most misclassified samples to start from, >= 1.
    k:
        Neighbours added per seed, >= 0.
    embedding:
        The vector score holding the embeddings.
    limit:
        Global size limit (``None``: no limit).

    Example
    -------
    >>> LikeMisclassified(seeds=10).requires == {"score:loss", "score:least_confidence", "score:embedding"}
    True
    """

    def __init__(self, seeds: int = 100, k: int = 10, embedding: str = "embedding",
                 limit: int | None = None) -> None:
        self.seeds = check_int("seeds", seeds, 1)
        self.k = check_int("k", k, 0)
        self.embedding = check_name("embedding", embedding)  # a vector score's name
        self.limit = check_int_or_none("limit", limit, 1)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"seeds": 5, "k": 3}, {"seeds": 3, "k": 2, "limit": 6}]

    @property
    def requires(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({"score:loss", "score:least_confidence", f"score:{self.embedding}"})

    def _select(self, ctx: SelectionContext) -> TrainSet:
        from modyn_store.core.vectors import VectorIndex

        keys, emb, _ = index_embeddings(ctx, self.embedding)
        lk, lv = _scores(ctx, "loss")
        ck, cv = _scores(ctx, "least_confidence")
        common, li, ci = np.intersect1d(lk, ck, return_indices=True)
        loss, top = lv[li], 1.0 - cv[ci]
        wrong = np.flatnonzero((np.exp(-loss) < top * (1.0 - MISCLASSIFIED_RTOL)) & np.isin(common, keys))
        order = np.lexsort((common[wrong], -loss[wrong]))[: self.seeds]
        seeds = common[wrong][order]
        if seeds.size == 0 or self.k == 0 or keys.size == 0:
            chosen = seeds
        else:
            index = VectorIndex.from_arrays(keys, emb)
            try:
                nn, d2 = index.search(emb[np.searchsorted(keys, seeds)], k=min(self.k + 1, keys.size))
            finally:
                index.close()
            # the k nearest others of each seed: its own key is dropped wherever it is (exact
            # duplicates of smaller keys may come first, or push it out of the k + 1 found),
            # else the farthest one found
            own = (nn == seeds[:, None]) & np.isfinite(d2)  # (padding: key -1, distance inf)
            last = np.arange(nn.shape[1]) == nn.shape[1] - 1
            drop = own | (~own.any(axis=1)[:, None] & last[None, :])
            flat, dist = nn[~drop], d2[~drop]
            ok = np.isfinite(dist)  # padding has distance inf (its key -1 may be a real key)
            flat, dist = flat[ok], dist[ok]
            by_dist = flat[np.lexsort((flat, dist))]
            _, first = np.unique(by_dist, return_index=True)
            neighbours = by_dist[np.sort(first)]
            neighbours = neighbours[~np.isin(neighbours, seeds)]
            chosen = np.concatenate([seeds, neighbours])
        if self.limit is not None:
            chosen = chosen[: self.limit]
        return trainset(np.sort(chosen), ctx)
