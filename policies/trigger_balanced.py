"""``TriggerBalanced``: equal quotas per trigger interval."""

from __future__ import annotations

from typing import Any

import numpy as np

from modyn_store.core.trainset import TrainSet
from policies._pick import RatioOrLimit, derive_seed, trainset, uniform_keys
from policies._stream import Bound, count_rows, iter_rows
from policies.base import SelectionContext, SelectionStrategy, register

__all__ = ["TriggerBalanced"]


@register("trigger_balanced")
class TriggerBalanced(RatioOrLimit, SelectionStrategy):
    """A uniform sample per trigger interval, with equal quotas (``engine.quota.allocate_quotas``).

    The intervals lie between the data cutoffs of past trainings (``trigger_cutoffs``), the
    last one from the latest cutoff to the snapshot; each gets an equal share of the budget, and an interval with too
    few samples leaves its rest to the others. Memory ``O(budget)``.

    Parameters
    ----------
    ratio, limit:
        Share of the eligible samples and global size limit.

    Example
    -------
    >>> import pyarrow as pa
    >>> from policies import SelectionContext, TriggerBalanced
    >>> from modyn_store import Store
    >>> store = Store.open("memory://trigger-balanced-doc", create=True)
    >>> v1 = store.append(pa.table({"ts": list(range(8))})).version  # keys 0-7
    >>> v2 = store.append(pa.table({"ts": [8, 9]})).version  # keys 8, 9
    >>> ctx = SelectionContext(snapshot=store.as_of(v2), trigger_cutoffs=(v1,))
    >>> ts = TriggerBalanced(limit=4).select(ctx)
    >>> int((ts.keys >= 8).sum()), ts.size
    (2, 4)
    """

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"limit": 30}, {"ratio": 0.4}]

    def intervals(self, ctx: SelectionContext) -> list[tuple[Bound, Bound]]:
        """The ``(after, within)`` cutoff pairs of the trigger intervals."""
        bounds: list[Bound] = [None, *ctx.trigger_cutoffs]
        return [(a, b) for a, b in zip(bounds, bounds[1:] + [None])]

    def interval_seeds(self, ctx: SelectionContext) -> list[int]:
        """The seed of each interval's uniform sample, in the order of :meth:`intervals`."""
        return [derive_seed(ctx.seed, 7, i) for i in range(len(ctx.trigger_cutoffs) + 1)]

    def _select(self, ctx: SelectionContext) -> TrainSet:
        from engine.quota import allocate_quotas
        from engine.sample import UniformSampler

        ranges = self.intervals(ctx)
        seeds = self.interval_seeds(ctx)
        if self.ratio is not None or self.limit is None or len(ranges) * self.limit > _ONE_PASS:
            counts = [count_rows(ctx, since=a, until=b) for a, b in ranges]
            sizes = allocate_quotas(np.array(counts, dtype=np.int64), self.expected_size(sum(counts)))
            parts = [uniform_keys(ctx, int(s), seed=seeds[i], since=a, until=b)
                     for i, ((a, b), s) in enumerate(zip(ranges, sizes)) if s > 0]
        else:
            # one scan per interval: a uniform sample of `limit` rows and the row count; the
            # engine's sample of q rows is the q best hash ranks, so sampling q of the kept rows
            # with the same seed gives exactly the uniform sample of q rows of the interval
            kept, counts = [], []
            for i, (a, b) in enumerate(ranges):
                sampler = UniformSampler(self.limit, seed=seeds[i])
                n = 0
                for batch in iter_rows(ctx, since=a, until=b):
                    sampler.update(batch["key"])
                    n += batch["key"].size
                kept.append(np.asarray(sampler.result(), dtype=np.int64))
                counts.append(n)
            sizes = allocate_quotas(np.array(counts, dtype=np.int64), self.expected_size(sum(counts)))
            parts = []
            for i, s in enumerate(sizes):
                sub = UniformSampler(int(s), seed=seeds[i])
                sub.update(kept[i])
                parts.append(np.asarray(sub.result(), dtype=np.int64))
        keys = np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
        return trainset(keys, ctx)


_ONE_PASS = 10_000_000  # most sampled keys held at once by the one-scan path
