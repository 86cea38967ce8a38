"""``GDumb``: a greedy class-balanced memory of ``memory`` samples; retrain from scratch."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from modyn_store.core.trainset import TrainSet
from policies._pick import derive_seed, fill_missing_labels, trainset
from policies._stream import iter_rows
from policies.base import SelectionContext, SelectionStrategy, check_count, register

__all__ = ["GDumb"]


@register("gdumb")
class GDumb(SelectionStrategy):
    """GDumb's greedy sampler (Prabhu et al., 2020) over the samples new since the last trigger.

    Each new sample (in storage order) enters the memory while it has room; when full, a sample
    of a class with fewer than ``memory / classes`` samples replaces a uniformly random sample of
    the currently largest class (ties: the smallest label). ``classes`` counts the classes in
    memory plus the new sample's: while no sample is deleted this is the paper's "classes seen
    so far" (a class leaves the memory only once every class holds at most one sample, and then
    both counts admit exactly the samples of classes not in memory). Deleted and erased samples
    leave the memory, and a class of which none remain no longer counts. With enough samples
    per class the memory holds exactly ``memory // C`` or ``memory // C + 1`` samples of each of
    the C classes. GDumb retrains from scratch on the memory each time
    (``update_hint = "retrain"``).

    Parameters
    ----------
    memory:
        Memory size, in ``[1, 2**62]`` (``policies.base.MAX_COUNT``); the memory holds at most
        the samples seen, whatever its size.

    Example
    -------
    >>> import pyarrow as pa
    >>> from policies import GDumb, SelectionContext
    >>> from modyn_store import Store
    >>> store = Store.open("memory://gdumb-doc", create=True)
    >>> v = store.append(pa.table({"ts": list(range(12)), "label": [0] * 9 + [1] * 3})).version
    >>> ts = GDumb(memory=6).select(SelectionContext(snapshot=store.as_of(v)))
    >>> int((ts.keys >= 9).sum()), ts.size
    (3, 6)
    """

    update_hint: ClassVar[str] = "retrain"
    stateful: ClassVar[bool] = True

    def __init__(self, memory: int = 1000) -> None:
        self.memory = check_count("memory", memory, 1)
        self._keys = np.empty(0, dtype=np.int64)  # the memory, in slot order
        self._codes = np.empty(0, dtype=np.int64)  # class codes: positions in ``_labels``
        self._labels: np.ndarray | None = None  # sorted distinct labels seen so far

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"memory": 30}]

    def expected_size(self, n: int) -> int:
        """The train set size once ``n`` samples have been seen (and none removed)."""
        return min(n, self.memory)

    def _drop_gone(self, ctx: SelectionContext) -> None:
        if self._keys.size == 0:
            return
        contains = getattr(ctx.snapshot, "contains", None)
        live = (np.asarray(contains(self._keys), dtype=bool) if contains is not None
                else np.isin(self._keys, ctx.snapshot.keys()))
        if ctx.excluded.size:
            live &= ~np.isin(self._keys, ctx.excluded)
        if not live.all():
            self._keys, self._codes = self._keys[live], self._codes[live]

    def _encode(self, labels: np.ndarray) -> np.ndarray:
        """Class codes of ``labels``, re-coding the memory when new labels arrive (codes follow label order)."""
        new = np.unique(labels)
        if self._labels is None:
            self._labels = new
        elif not np.isin(new, self._labels).all():
            merged = np.union1d(self._labels, new)
            self._codes = np.searchsorted(merged, self._labels[self._codes]).astype(np.int64)
            self._labels = merged
        return np.searchsorted(self._labels, labels).astype(np.int64)

    def _select(self, ctx: SelectionContext) -> TrainSet:
        from engine.memory import greedy_balanced, random_state

        # the memory as it was: a call that fails part way (a read error) leaves it unchanged,
        # since the rows it had fed would otherwise enter a second time when selected again
        before = (self._keys, self._codes, self._labels)
        try:
            self._drop_gone(ctx)
            since = ctx.trigger_cutoffs[-1] if ctx.trigger_cutoffs else None
            # one random stream over every batch: the memory does not depend on how the rows are
            # cut into batches (``ctx.batch_size``, fragment boundaries that compaction changes)
            rng = random_state(derive_seed(ctx.seed, 8, ctx.trigger_index))
            for b in iter_rows(ctx, [ctx.label_column], since=since):
                codes = self._encode(fill_missing_labels(b[ctx.label_column]))
                assert self._labels is not None
                self._keys, self._codes = greedy_balanced(
                    self._keys, self._codes, b["key"], codes, memory=self.memory,
                    n_classes=self._labels.size, rng=rng)
        except BaseException:
            self._keys, self._codes, self._labels = before
            raise
        keys = np.sort(self._keys)
        if ctx.candidates is not None:
            # the memory may hold keys of earlier triggers that are not candidates now (e.g. not
            # chosen by ``Compose``'s ``pre`` this time): they stay in memory, out of this set
            keys = keys[np.isin(keys, ctx.candidates)]
        return trainset(keys, ctx)
