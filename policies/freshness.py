"""``Freshness``: mix samples never trained on with samples trained on before."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine._search import sorted_unique
from modyn_store.core._validate import check_float
from modyn_store.core.trainset import TrainSet
from policies._pick import check_size, derive_seed, target_size, trainset
from policies._stream import _isin, iter_rows
from policies.base import SelectionContext, SelectionStrategy, register

__all__ = ["Freshness"]


@register("freshness")
class Freshness(SelectionStrategy):
    """A train set of which ``unused_ratio`` are samples no past train set used.

    The size is ``round(ratio * n)`` (capped by ``limit``). ``round(size * unused_ratio)``
    samples are drawn uniformly from the unused ones and the rest from the used ones; when a
    pool is too small the other one fills the gap.

    Parameters
    ----------
    unused_ratio:
        Share of never-used samples, in [0, 1].
    ratio, limit:
        Share of the eligible samples and global size limit.

    Example
    -------
    >>> import numpy as np, pyarrow as pa
    >>> from modyn_store.core.trainset import TrainSet
    >>> from policies import Freshness, SelectionContext
    >>> from modyn_store import Store
    >>> store = Store.open("memory://freshness-doc", create=True)
    >>> v1 = store.append(pa.table({"ts": list(range(5))})).version
    >>> snap = store.as_of(store.append(pa.table({"ts": list(range(5, 10))})).version)
    >>> old = TrainSet.uniform(np.arange(5), version=v1)
    >>> ts = Freshness(unused_ratio=0.75, limit=4).select(SelectionContext(snapshot=snap, history=(old,)))
    >>> int((ts.keys >= 5).sum())
    3
    """

    def __init__(self, unused_ratio: float = 0.5, ratio: float | None = None,
                 limit: int | None = None) -> None:
        self.unused_ratio = check_float("unused_ratio", unused_ratio, 0.0, 1.0)
        self.ratio, self.limit = check_size(ratio, limit)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"unused_ratio": 0.5, "limit": 30}, {"unused_ratio": 1.0, "ratio": 0.5}]

    def expected_size(self, n: int) -> int:
        """The train set size for ``n`` eligible samples."""
        return target_size(n, self.ratio, self.limit)

    def _select(self, ctx: SelectionContext) -> TrainSet:
        from engine.sample import UniformSampler

        used = (sorted_unique(np.concatenate([t.keys for t in ctx.history]))
                if ctx.history else np.empty(0, dtype=np.int64))
        n_used = n_unused = 0
        for b in iter_rows(ctx):
            m = int(_isin(b["key"], used).sum())
            n_used += m
            n_unused += b["key"].size - m
        k = self.expected_size(n_used + n_unused)
        k_unused = min(int(round(k * self.unused_ratio)), n_unused)
        k_used = min(k - k_unused, n_used)
        k_unused = min(k - k_used, n_unused)
        samplers = (UniformSampler(k_unused, seed=derive_seed(ctx.seed, 4, 0)),
                    UniformSampler(k_used, seed=derive_seed(ctx.seed, 4, 1)))
        for b in iter_rows(ctx):
            hit = _isin(b["key"], used)
            samplers[0].update(b["key"][~hit])
            samplers[1].update(b["key"][hit])
        keys = np.sort(np.concatenate([np.asarray(s.result(), dtype=np.int64) for s in samplers]))
        return trainset(keys, ctx)
