"""``NearDuplicates``: drop samples that nearly duplicate an older one in embedding space."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine._magnitude import power_of_two_scale
from modyn_store.core._validate import check_float, check_int, check_name
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies._pick import score_source, trainset
from policies.base import SelectionContext, SelectionStrategy, register

__all__ = ["NearDuplicates", "embedding_matrix", "embeddings_of", "index_embeddings"]

#: float64 embeddings whose largest magnitude lies outside ``2**+-_FLOAT32_BITS`` are rescaled
#: before the float32 vector index (see :func:`index_embeddings`)
_FLOAT32_BITS = 64


def embedding_matrix(values: Any, n: int, label: str, dtype: Any = np.float32) -> np.ndarray:
    """``values`` as an ``[n, d]`` embedding matrix (``d >= 1``; a 1-D array is one value per
    row), else ``InvalidArgumentError`` naming ``label`` (where they came from): not numbers,
    not ``n`` rows, zero width, or more than two dimensions (a 3-D array is refused, not
    flattened). ``dtype=None`` keeps the values' own numeric type."""
    v = np.asarray(values)
    if v.dtype.kind not in "biuf":
        raise InvalidArgumentError(label, str(v.dtype), "numeric embeddings")
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2 or v.shape[0] != n or v.shape[1] == 0:
        raise InvalidArgumentError(label, v.shape, f"[{n}, d] embeddings (one row of d >= 1 values per key)")
    if dtype is None:
        return v
    with np.errstate(over="ignore"):  # beyond float32's range: refused as non-finite later
        return v.astype(dtype, copy=False)


def embeddings_of(ctx: SelectionContext, name: str, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Sorted eligible keys and their ``[n, d]`` embeddings (vector score ``name``); every batch
    of a streamed score must have the same width ``d``. ``dtype=None`` keeps the scores' own
    numeric type."""
    parts = list(score_source(ctx, name)())
    if not parts:
        return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=dtype or np.float32)
    keys = np.concatenate([p[0] for p in parts])
    label = f"computed_scores[{name!r}]" if name in ctx.computed_scores else f"score {name!r}"
    mats = [embedding_matrix(p[1], p[0].size, label, dtype) for p in parts]
    widths = sorted({m.shape[1] for m in mats})
    if len(widths) > 1:
        raise InvalidArgumentError(label, f"batches of widths {widths}",
                                   "embeddings of one width")
    emb = np.concatenate(mats)
    order = np.argsort(keys, kind="stable")
    return keys[order], emb[order]


def index_embeddings(ctx: SelectionContext, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """``(keys, float32 embeddings, e)`` for a :class:`~modyn_store.core.vectors.VectorIndex`
    (float32): the embeddings are those of :func:`embeddings_of` times ``2**-e``.

    ``e`` is 0 unless the embeddings are wider than float32 (a scoring pass's float64) and
    their largest magnitude lies outside ``2**+-64``: they are then scaled by a power of two
    (exact) into [0.5, 1) before the float32 cast, which would otherwise turn tiny embeddings
    into zeros (every distance 0: every sample a duplicate of every other) and huge ones into
    inf (refused as non-finite). Neighbours do not depend on the scale; distances are those of
    the embeddings times ``2**-e``.
    """
    keys, raw = embeddings_of(ctx, name, None)
    e = 0
    if raw.dtype.kind == "f" and raw.dtype.itemsize > 4:
        (raw,), e = power_of_two_scale(raw, bits=_FLOAT32_BITS)
    with np.errstate(over="ignore"):  # beyond float32's range: refused as non-finite later
        return keys, np.ascontiguousarray(raw, dtype=np.float32), e


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

        keys, emb, e = index_embeddings(ctx, self.embedding)
        if keys.size < 2:
            return trainset(keys, ctx)
        index = VectorIndex.from_arrays(keys, emb)
        try:
            nn, d2 = index.search(emb, k=min(self.k + 1, keys.size))
        finally:
            index.close()
        # padding (key -1) has distance inf, so the radius test leaves it out; a key test
        # (nn >= 0) would also drop real neighbours of negative keys; distances are those of
        # the embeddings times 2**-e, so is the radius (exact); beyond float64 it is inf
        with np.errstate(over="ignore", under="ignore"):
            r2 = np.square(np.ldexp(np.float64(self.radius), -e))
        dup = ((nn < keys[:, None]) & (d2 <= r2)).any(axis=1)
        return trainset(keys[~dup], ctx)
