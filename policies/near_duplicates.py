"""``NearDuplicates``: drop samples that nearly duplicate an older one in embedding space."""

from __future__ import annotations

from typing import Any

import numpy as np

from modyn_store.core._validate import check_float, check_int, check_name
from modyn_store.core.trainset import TrainSet
from policies._pick import score_source, trainset
from policies.base import SelectionContext, SelectionStrategy, register

__all__ = ["NearDuplicates", "embeddings_of"]


def embeddings_of(ctx: SelectionContext, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted eligible keys and their ``[n, d]`` embeddings (vector score ``name``)."""
    parts = list(score_source(ctx, name)())
    if not parts:
        return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
    keys = np.concatenate([p[0] for p in parts])
    emb = np.concatenate([np.asarray(p[1], dtype=np.float32).reshape(p[0].size, -1) for p in parts])
    order = np.argsort(keys, kind="stable")
    return keys[order], emb[order]


@register("near_duplicates")
class NearDuplicates(SelectionStrategy):
    """Every eligible sample except near duplicates: a sample is dropped when a sample of a
    smaller key lies within L2 distance ``radius`` of it in embedding space (so of each group of
    near duplicates the oldest-keyed survives).

    Each sample's ``k`` nearest neighbours come from a :class:`~modyn_store.core.vectors.VectorIndex`
    (exact below 50,000 samples, else LanceDB IVF-PQ; a duplicate beyond the ``k``
    nearest is not seen).

    Parameters
    ----------
    radius:
        Distance at or below which two samples are duplicates, > 0.
    k:
        Neighbours searched per sample, >= 1.
    embedding:
        The vector score holding the embeddings.

    Example
    -------
    >>> import numpy as np, pyarrow as pa
    >>> from policies import SelectionContext
    >>> from modyn_store import Store
    >>> store = Store.open("memory://near-duplicates-doc", create=True)
    >>> snap = store.as_of(store.append(pa.table({"key": [1, 2, 3], "ts": [0, 1, 2]})).version)
    >>> emb = (np.array([1, 2, 3]), np.array([[0.0, 0.0], [0.01, 0.0], [1.0, 1.0]]))
    >>> ctx = SelectionContext(snapshot=snap, computed_scores={"embedding": emb})
    >>> NearDuplicates(radius=0.1).select(ctx).keys.tolist()
    [1, 3]
    """

    def __init__(self, radius: float = 0.1, k: int = 10, embedding: str = "embedding") -> None:
        self.radius = check_float("radius", radius, 0.0, None, lo_open=True)
        self.k = check_int("k", k, 1)
        self.embedding = check_name("embedding", embedding)  # a vector score's name

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"radius": 0.5, "k": 5}]

    @property
    def requires(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({f"score:{self.embedding}"})

    def _select(self, ctx: SelectionContext) -> TrainSet:
        from modyn_store.core.vectors import VectorIndex

        keys, emb = embeddings_of(ctx, self.embedding)
        if keys.size < 2:
            return trainset(keys, ctx)
        index = VectorIndex.from_arrays(keys, emb)
        try:
            nn, d2 = index.search(emb, k=min(self.k + 1, keys.size))
        finally:
            index.close()
        dup = ((nn >= 0) & (nn < keys[:, None]) & (d2 <= self.radius**2)).any(axis=1)
        return trainset(keys[~dup], ctx)
