"""``KCenterGreedy``: a core set that covers the embedding space (Sener & Savarese, 2018)."""

from __future__ import annotations

from typing import Any

import numpy as np

from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies._pick import all_keys, check_size, derive_seed, target_size, trainset
from policies.base import SelectionContext, SelectionStrategy, register
from policies.near_duplicates import embedding_matrix, embeddings_of

__all__ = ["KCenterGreedy"]


@register("kcenter_greedy")
class KCenterGreedy(SelectionStrategy):
    """Greedy k-center selection on embeddings (``engine.kcenter.kcenter_greedy``).

    Embeddings come from the vector score named ``embedding`` (a scoring pass's
    ``ctx.computed_scores``, or the store's scores: ``ctx.scores.names()`` lists it), or, when
    ``ctx.embed`` is given and no such score exists, from ``ctx.embed(keys)``. Embeddings must
    be ``[n, d]`` numbers with ``d >= 1``, of one width across streamed batches
    (``InvalidArgumentError`` otherwise). The whole eligible set is embedded in memory: presample
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

    def _embeddings(self, ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray, str]:
        """Keys, their embeddings and where these came from."""
        if ctx.embed is not None and not self._has_score(ctx):
            keys = all_keys(ctx)
            return keys, embedding_matrix(ctx.embed(keys), keys.size, "ctx.embed(keys)", np.float64), "ctx.embed(keys)"
        return (*embeddings_of(ctx, self.embedding, np.float64), f"score {self.embedding!r}")

    def _has_score(self, ctx: SelectionContext) -> bool:
        """Whether the ``embedding`` score exists: computed, or written to the store's scores."""
        if self.embedding in ctx.computed_scores:
            return True
        names = getattr(ctx.scores, "names", None)
        return callable(names) and self.embedding in names()

    def _select(self, ctx: SelectionContext) -> TrainSet:
        from engine.kcenter import kcenter_greedy

        keys, emb, source = self._embeddings(ctx)
        if not np.isfinite(emb).all():  # refused whether or not the greedy pass runs
            bad = int(keys[np.flatnonzero(~np.isfinite(emb).all(axis=1))[0]])
            raise InvalidArgumentError(source, f"a non-finite embedding (key {bad})", "finite embeddings")
        k = self.expected_size(keys.size)
        if k >= keys.size:
            return trainset(keys, ctx)
        idx = np.asarray(kcenter_greedy(emb, k, seed=derive_seed(ctx.seed, 12)), dtype=np.int64)
        return trainset(np.sort(keys[idx]), ctx)

