"""``NewData``: train on the samples inserted since the last trigger (or the last ``tail``)."""

from __future__ import annotations

from typing import Any

from modyn_store.core._validate import check_choice, check_int
from modyn_store.core.trainset import TrainSet
from policies._pick import check_size, derive_seed, pick_share, target_size, trainset
from policies.base import Cutoff, SelectionContext, SelectionStrategy, register

__all__ = ["NewData"]


@register("new_data")
class NewData(SelectionStrategy):
    """Samples past the data cutoff of the ``tail``-th last training (sample-precise: a
    cutoff inside a version, ``Firing.cutoff``, counts that version's later rows as new).

    ``tail=1`` is the data since the last trigger; ``tail=k`` a window of the last k trigger
    intervals (all data while fewer than k trainings happened).

    Parameters
    ----------
    tail:
        How many past trigger intervals to include, >= 1.
    limit:
        Global size limit, or ``None``.
    sample:
        Which samples stay when the limit binds: ``"newest"`` (event time) or ``"uniform"``.

    Example
    -------
    >>> import pyarrow as pa
    >>> from policies import NewData, SelectionContext
    >>> from modyn_store import Store
    >>> store = Store.open("memory://new-data-doc", create=True)
    >>> for k in (1, 2, 3):  # one version per row: versions 1, 2, 3
    ...     _ = store.append(pa.table({"key": [k], "ts": [k - 1]}))
    >>> ctx = SelectionContext(snapshot=store.as_of(3), trigger_cutoffs=(1,))
    >>> NewData().select(ctx).keys.tolist()
    [2, 3]
    """

    def __init__(self, tail: int = 1, limit: int | None = None, sample: str = "newest") -> None:
        self.tail = check_int("tail", tail, 1)
        _, self.limit = check_size(None, limit)
        self.sample = check_choice("sample", sample, ("newest", "uniform"))

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"limit": 10}, {"tail": 2, "limit": 12, "sample": "uniform"}]

    def since(self, ctx: SelectionContext) -> Cutoff | None:
        """The cutoff after which samples count as new (``None``: from the start)."""
        if len(ctx.trigger_cutoffs) < self.tail:
            return None
        return ctx.trigger_cutoffs[-self.tail]  # type: ignore[return-value]

    def expected_size(self, n: int) -> int:
        """The train set size for ``n`` new samples."""
        return target_size(n, None, self.limit)

    def _select(self, ctx: SelectionContext) -> TrainSet:
        since = self.since(ctx)
        keys = pick_share(ctx, self.expected_size, str(self.sample), since=since, seed=derive_seed(ctx.seed, 2))
        return trainset(keys, ctx)
