"""``RS2``: a fresh uniform subset of the data every epoch (repeated sampling of random subsets)."""

from __future__ import annotations

from typing import Any

import numpy as np

from modyn_store.core._validate import check_bool
from modyn_store.core.trainset import TrainSet
from policies._pick import all_keys, check_size, derive_seed, target_size, trainset
from policies.base import SelectionContext, SelectionStrategy, check_count, register

__all__ = ["MAX_EPOCHS", "RS2"]

#: The most epoch plans ``RS2`` draws (each is held in memory with the train set).
MAX_EPOCHS = 100_000


@register("rs2")
class RS2(SelectionStrategy):
    """Each of ``epochs`` epochs trains on its own uniform subset of ``round(ratio * n)`` samples.

    Without ``replacement`` consecutive epochs walk through one random permutation of the
    eligible samples, so no sample repeats before every sample was used once (a new
    permutation starts when one runs out, without the samples left over from the last one);
    with ``replacement`` each epoch draws independently.
    The returned train set holds the union of the subsets; ``per_epoch`` gives each epoch's
    positions (the training API cycles through them).

    Parameters
    ----------
    ratio, limit:
        Per-epoch share of the eligible samples and per-epoch size limit.
    epochs:
        How many epoch plans to draw, in ``[1, 100000]`` (``MAX_EPOCHS``; every plan is kept in
        memory).
    replacement:
        Whether a sample may be drawn again before all samples were drawn.

    Example
    -------
    >>> import pyarrow as pa
    >>> from policies import RS2, SelectionContext
    >>> from modyn_store import Store
    >>> store = Store.open("memory://rs2-doc", create=True)
    >>> snap = store.as_of(store.append(pa.table({"ts": list(range(10))})).version)
    >>> ts = RS2(ratio=0.5, epochs=2).select(SelectionContext(snapshot=snap))
    >>> ts.size, [len(ts.for_epoch(e)) for e in range(2)]
    (10, [5, 5])
    """

    def __init__(self, ratio: float = 0.1, limit: int | None = None, epochs: int = 10,
                 replacement: bool = False) -> None:
        self.ratio, self.limit = check_size(ratio, limit)
        self.epochs = check_count("epochs", epochs, 1, MAX_EPOCHS, "100000")
        self.replacement = check_bool("replacement", replacement)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"ratio": 0.3, "epochs": 4}, {"ratio": 0.5, "limit": 20, "epochs": 3,
                                              "replacement": True}]

    def expected_size(self, n: int) -> int:
        """The per-epoch subset size for ``n`` eligible samples."""
        return target_size(n, self.ratio, self.limit)

    def _select(self, ctx: SelectionContext) -> TrainSet:
        from engine.sample import uniform_sample

        pool = all_keys(ctx)
        n = pool.size
        m = self.expected_size(n)
        plans: list[np.ndarray] = []
        if self.replacement:
            for e in range(self.epochs):
                plans.append(np.asarray(uniform_sample(n, m, seed=derive_seed(ctx.seed, 5, e)),
                                        dtype=np.int64))
        else:
            perm = np.empty(0, dtype=np.int64)
            cycle = 0
            for _ in range(self.epochs):
                if perm.size < m:
                    rng = np.random.default_rng(derive_seed(ctx.seed, 5, 10**6 + cycle))
                    fresh = rng.permutation(n)
                    perm = np.concatenate([perm, fresh[~np.isin(fresh, perm)]])
                    cycle += 1
                plans.append(np.sort(perm[:m]))
                perm = perm[m:]
        used = np.unique(np.concatenate(plans)) if plans else np.empty(0, dtype=np.int64)
        remap = np.full(n, -1, dtype=np.int64)
        remap[used] = np.arange(used.size)
        return trainset(pool[used], ctx, per_epoch=tuple(remap[p] for p in plans))
