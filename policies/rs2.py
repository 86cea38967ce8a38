"""``RS2``: a fresh uniform subset of the data every epoch (repeated sampling of random subsets)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine._search import sorted_unique
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

    Without ``replacement`` consecutive epochs walk through random permutations of the
    eligible samples (passes), so no sample repeats before every sample was used once, and
    after any number of epochs the samples' draw counts differ by at most one (Okanovic et
    al., 2023). When a pass runs out inside an epoch, that epoch takes the pass's last samples
    plus the first samples of a fresh permutation that are not among them (so no epoch holds
    a sample twice); those last samples stay in the new pass, later. With ``replacement``
    each epoch draws its subset independently (a sample may then repeat before all were used).
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
            rest = np.empty(0, dtype=np.int64)  # the current pass's samples not drawn yet
            cycle = 0
            for _ in range(self.epochs):
                if rest.size >= m:
                    plans.append(np.sort(rest[:m]))
                    rest = rest[m:]
                    continue
                # the pass runs out: this epoch ends it and starts the next pass with samples
                # other than its last ones; the next pass still holds every sample once (the
                # last ones of this pass come later in it), so counts never differ by more than 1
                rng = np.random.default_rng(derive_seed(ctx.seed, 5, 10**6 + cycle))
                fresh = rng.permutation(n)
                cycle += 1
                free = np.flatnonzero(~np.isin(fresh, rest))[: m - rest.size]
                plans.append(np.sort(np.concatenate([rest, fresh[free]])))
                rest = np.delete(fresh, free)
        used = sorted_unique(np.concatenate(plans)) if plans else np.empty(0, dtype=np.int64)
        remap = np.full(n, -1, dtype=np.int64)
        remap[used] = np.arange(used.size)
        return trainset(pool[used], ctx, per_epoch=tuple(remap[p] for p in plans))
