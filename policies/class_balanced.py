"""``ClassBalanced``: equal quotas per class label."""

from __future__ import annotations

from typing import Any

import numpy as np

from modyn_store.core.trainset import TrainSet
from policies._pick import RatioOrLimit, derive_seed, label_counts, trainset
from policies._stream import iter_rows
from policies.base import SelectionContext, SelectionStrategy, register

__all__ = ["ClassBalanced", "integer_labels", "label_groups"]


@register("class_balanced")
class ClassBalanced(RatioOrLimit, SelectionStrategy):
    """A uniform sample per class, balanced by ``engine.quota.BalancedSelector``.

    The budget ``round(ratio * n)`` (capped by ``limit``) is split equally between the classes
    (water-filling): a class with fewer samples than its share gives the rest to the classes
    that have more; units that do not divide evenly go to the smallest labels. One streaming pass
    for integer labels and a limit (one more to count for ``ratio`` or to list non-integer
    labels), in ``O(budget + classes)`` memory.

    Parameters
    ----------
    ratio, limit:
        Share of the eligible samples and global size limit.

    Example
    -------
    >>> import pyarrow as pa
    >>> from policies import ClassBalanced, SelectionContext
    >>> from modyn_store import Store
    >>> store = Store.open("memory://class-balanced-doc", create=True)
    >>> v = store.append(pa.table({"ts": list(range(12)), "label": [0] * 10 + [1] * 2})).version
    >>> ts = ClassBalanced(limit=6).select(SelectionContext(snapshot=store.as_of(v)))
    >>> int((ts.keys >= 10).sum()), ts.size
    (2, 6)
    """

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"limit": 30}, {"ratio": 0.5}]

    def rank_seed(self, ctx: SelectionContext) -> int:
        """The seed of the per-class uniform ranks (``BalancedSelector``'s ``seed``)."""
        return derive_seed(ctx.seed, 6)

    def _select(self, ctx: SelectionContext) -> TrainSet:
        from engine.quota import BalancedSelector

        col = ctx.label_column
        labels: np.ndarray | None = None  # the sorted label values, for non-integer labels
        n: int | None = None
        integer = integer_labels(ctx)
        if self.ratio is not None or not integer:
            counts = label_counts(ctx)
            labels = np.array(list(counts)) if not integer else None
            n = sum(counts.values())
        budget = self.expected_size(n) if n is not None else int(self.limit or 0)
        sel = BalancedSelector(budget, rule="uniform", seed=self.rank_seed(ctx))
        for b in iter_rows(ctx, [col]):
            sel.update(label_groups(b[col], labels), keys=b["key"])
        return trainset(np.asarray(sel.result(), dtype=np.int64), ctx)


def integer_labels(ctx: SelectionContext) -> bool:
    """Whether the label column holds integers (then they are the groups directly)."""
    for b in iter_rows(ctx, [ctx.label_column]):
        return bool(np.issubdtype(b[ctx.label_column].dtype, np.integer))
    return True


#: the group of a missing label of an integer column: after every label, as NaN sorts
MISSING_GROUP = np.iinfo(np.int64).max


def label_groups(values: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """The quota group of each label value: the value itself for integer labels (``labels`` is
    None), else its position in the sorted distinct ``labels`` (from ``label_counts``).

    A nullable integer column reads as float64 in a batch that holds a null (NaN): its values
    are the integer groups again, and a null is :data:`MISSING_GROUP`, so the groups and their
    order do not depend on which batches hold nulls.
    """
    if labels is not None:
        return np.searchsorted(labels, values)
    if values.dtype.kind == "f":
        missing = np.isnan(values)
        return np.where(missing, MISSING_GROUP, np.where(missing, 0, values).astype(np.int64))
    return values
