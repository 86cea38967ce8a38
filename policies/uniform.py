"""``Uniform``: a uniform random share of all live samples."""

from __future__ import annotations

from typing import Any

from modyn_store.core.trainset import TrainSet
from policies._pick import check_size, derive_seed, pick_share, target_size, trainset
from policies.base import SelectionContext, SelectionStrategy, register

__all__ = ["Uniform"]


@register("uniform")
class Uniform(SelectionStrategy):
    """A uniform sample (without replacement) of ``round(ratio * n)`` eligible samples.

    Streams the snapshot once (counting and sampling in the same pass) in ``O(size)`` memory (``engine.sample.UniformSampler``).

    Parameters
    ----------
    ratio:
        Share of the eligible samples, in (0, 1].
    limit:
        Global size limit, or ``None``.

    Example
    -------
    >>> import pyarrow as pa
    >>> from policies import SelectionContext, Uniform
    >>> from modyn_store import Store
    >>> store = Store.open("memory://uniform-doc", create=True)
    >>> snap = store.as_of(store.append(pa.table({"ts": list(range(100))})).version)
    >>> Uniform(ratio=0.1).select(SelectionContext(snapshot=snap, seed=3)).size
    10
    """

    def __init__(self, ratio: float = 0.5, limit: int | None = None) -> None:
        self.ratio, self.limit = check_size(ratio, limit)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"ratio": 0.3}, {"ratio": 0.9, "limit": 30}]

    def expected_size(self, n: int) -> int:
        """The train set size for ``n`` eligible samples."""
        return target_size(n, self.ratio, self.limit)

    def _select(self, ctx: SelectionContext) -> TrainSet:
        keys = pick_share(ctx, self.expected_size, "uniform", seed=derive_seed(ctx.seed, 3))
        return trainset(keys, ctx)
