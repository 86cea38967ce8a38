"""``AllData``: train on every live sample (optionally capped)."""

from __future__ import annotations

from typing import Any

from modyn_store.core._validate import check_choice
from modyn_store.core.trainset import TrainSet
from policies._pick import check_size, derive_seed, pick_share, target_size, trainset
from policies.base import SelectionContext, SelectionStrategy, register

__all__ = ["AllData"]


@register("all_data")
class AllData(SelectionStrategy):
    """Every eligible sample of the snapshot, capped at ``limit`` (chosen by ``sample``).

    Parameters
    ----------
    limit:
        Global size limit, or ``None`` for no limit.
    sample:
        Which samples stay when the limit binds: ``"uniform"`` or ``"newest"`` (event time).

    Example
    -------
    >>> import pyarrow as pa
    >>> from policies import AllData, SelectionContext
    >>> from modyn_store import Store
    >>> store = Store.open("memory://all-data-doc", create=True)
    >>> snap = store.as_of(store.append(pa.table({"key": [1, 2, 3, 4], "ts": [4, 3, 2, 1]})).version)
    >>> AllData(limit=2, sample="newest").select(SelectionContext(snapshot=snap)).keys.tolist()
    [1, 2]
    """

    def __init__(self, limit: int | None = None, sample: str = "uniform") -> None:
        _, self.limit = check_size(None, limit)
        self.sample = check_choice("sample", sample, ("uniform", "newest"))

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"limit": 40}, {"limit": 25, "sample": "newest"}]

    def expected_size(self, n: int) -> int:
        """The train set size for ``n`` eligible samples."""
        return target_size(n, None, self.limit)

    def _select(self, ctx: SelectionContext) -> TrainSet:
        keys = pick_share(ctx, self.expected_size, str(self.sample), seed=derive_seed(ctx.seed, 1))
        return trainset(keys, ctx)
