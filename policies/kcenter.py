"""``KCenterGreedy``: a core set that covers the embedding space (Sener & Savarese, 2018)."""

from __future__ import annotations

from typing import Any

import numpy as np

from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies._pick import all_keys, check_size, derive_seed, score_source, target_size, trainset
from policies.base import SelectionContext, SelectionStrategy, register

__all__ = ["KCenterGreedy"]


@register("kcenter_greedy")
class KCenterGreedy(SelectionStrategy):
    """Greedy k-center selection on embeddings (``engine.kcenter.kcenter_greedy``).

    Embeddings come from the vector score named ``embedding`` (a scoring pass's
    ``ctx.computed_scores``, or the store's scores), or, when ``ctx.embed`` is given and no such
    score is, from ``ctx.embed(keys)``. The whole eligible set is embedded in memory: presample
    large snapshots first (see ``Compose``).

    Parameters
    ----------
    ratio, limit:
        Share of the eligible samples and global size limit.
    embedding:
        Score name holding stored embeddings.

    Example
    -------
    >>> KCenterGreedy(limit=100).requires
    frozenset({'score:embedding'})
    """

    def __init__(self, ratio: float | None = None, limit: int | None = None,
                 embedding: str = "embedding") -> None:
        self.ratio, self.limit = check_size(ratio, limit)
        if not isinstance(embedding, str) or not embedding:
            raise InvalidArgumentError("embedding", embedding, "a score name")
        self.embedding = embedding

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"limit": 20}]

    @property
    def requires(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({f"score:{self.embedding}"})

    def expected_size(self, n: int) -> int:
        """The train set size for ``n`` eligible samples."""
        return target_size(n, self.ratio, self.limit)

    def _embeddings(self, ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray]:
        if ctx.embed is not None and self.embedding not in ctx.computed_scores:
            keys = all_keys(ctx)
            return keys, np.asarray(ctx.embed(keys), dtype=np.float64).reshape(keys.size, -1)
        parts = list(score_source(ctx, self.embedding)())
        if not parts:
            return np.empty(0, dtype=np.int64), np.empty((0, 0))
        keys = np.concatenate([p[0] for p in parts])
        emb = np.concatenate([np.asarray(p[1], dtype=np.float64).reshape(p[0].size, -1)
                              for p in parts])
        order = np.argsort(keys)
        return keys[order], emb[order]

    def _select(self, ctx: SelectionContext) -> TrainSet:
        from engine.kcenter import kcenter_greedy

        keys, emb = self._embeddings(ctx)
        k = self.expected_size(keys.size)
        if k >= keys.size:
            return trainset(keys, ctx)
        idx = np.asarray(kcenter_greedy(emb, k, seed=derive_seed(ctx.seed, 12)), dtype=np.int64)
        return trainset(np.sort(keys[idx]), ctx)

