"""``ClassBalanced``: equal quotas per class label."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies._pick import RatioOrLimit, derive_seed, fill_missing_labels, label_counts, trainset
from policies._columns import column_to_numpy, integer_column
from policies._stream import eligible_mask, iter_rows
from policies.base import SelectionContext, SelectionStrategy, register

__all__ = ["LABEL_TYPES", "ClassBalanced", "check_label_type", "integer_labels", "label_groups"]

#: the label columns ``ClassBalanced`` balances, in words (a nested column is refused)
LABEL_TYPES = ("a label column of scalars: integer, floating-point, string, binary, boolean, "
               "date or timestamp (not a list, fixed-size list, struct or map)")


@register("class_balanced")
class ClassBalanced(RatioOrLimit, SelectionStrategy):
    """A uniform sample per class, balanced by ``engine.quota.BalancedSelector``.

    The budget ``round(ratio * n)`` (capped by ``limit``) is split equally between the classes
    (water-filling): a class with fewer samples than its share gives the rest to the classes
    that have more; units that do not divide evenly go to the smallest labels. Integer labels
    are read exactly (any int64 or uint64 value is its own class); a missing label of a nullable
    column is one class of its own, ordered last. One streaming pass for integer labels and a
    limit (one more to count for ``ratio``, to list non-integer labels, or when a label
    ``2**63 - 1`` or a uint64 label beyond int64 is met), in ``O(budget + classes)`` memory.

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

        check_label_type(ctx)
        col = ctx.label_column
        if not _integer_column(ctx):  # floats, strings, ...: positions in the sorted labels
            counts = label_counts(ctx)
            labels = np.array(list(counts))
            sel = BalancedSelector(self.expected_size(sum(counts.values())), rule="uniform",
                                   seed=self.rank_seed(ctx))
            for b in iter_rows(ctx, [col]):
                sel.update(label_groups(b[col], labels), keys=b["key"])
            return trainset(np.asarray(sel.result(), dtype=np.int64), ctx)
        if self.ratio is None:
            keys = self._one_pass(ctx)
            if keys is not None:
                return trainset(keys, ctx)
        # counted first (for ``ratio``, or when the labels are not their own groups): the groups
        # are positions in the sorted distinct labels, a missing label the one after them
        ints, n = _distinct_integer_labels(ctx)
        sel = BalancedSelector(self.expected_size(n), rule="uniform", seed=self.rank_seed(ctx))
        for keys, values, valid in _integer_batches(ctx):
            sel.update(label_groups(values, ints, valid), keys=keys)
        return trainset(np.asarray(sel.result(), dtype=np.int64), ctx)

    def _one_pass(self, ctx: SelectionContext) -> np.ndarray | None:
        """The selection for integer labels and a limit, in one pass with the labels as the
        groups and a missing label as :data:`MISSING_GROUP`; ``None`` (stopped early) when the
        labels cannot be their own groups: a label equal to ``MISSING_GROUP`` next to a missing
        one, or a uint64 label beyond int64."""
        from engine.quota import BalancedSelector

        sel = BalancedSelector(int(self.limit or 0), rule="uniform", seed=self.rank_seed(ctx))
        any_missing = any_max = False
        for keys, values, valid in _integer_batches(ctx):
            if values.dtype == np.uint64 and values.size and int(values.max()) > MISSING_GROUP:
                return None
            any_missing = any_missing or valid is not None
            any_max = any_max or bool(np.any((values == MISSING_GROUP) if valid is None
                                             else (values == MISSING_GROUP) & valid))
            if any_missing and any_max:
                return None
            sel.update(label_groups(values, None, valid), keys=keys)
        return np.asarray(sel.result(), dtype=np.int64)


def check_label_type(ctx: SelectionContext) -> None:
    """Refuse a nested label column (list, fixed-size list, struct, map): its values are not
    class labels. Raises :class:`InvalidArgumentError` naming the label column and
    :data:`LABEL_TYPES`; the Ray path checks the same."""
    col = ctx.label_column
    for batch in ctx.snapshot.to_batches([col], None, batch_size=ctx.batch_size):
        t = batch.schema.field(col).type
        if pa.types.is_nested(t):
            raise InvalidArgumentError(col, str(t), LABEL_TYPES)
        return


def integer_labels(ctx: SelectionContext) -> bool:
    """Whether the first batch of labels reads as integers (an integer column without a null
    in it; the Ray path of ``ClassBalanced`` then uses the labels as the groups)."""
    for b in iter_rows(ctx, [ctx.label_column]):
        return bool(np.issubdtype(b[ctx.label_column].dtype, np.integer))
    return True


def _integer_column(ctx: SelectionContext) -> bool:
    """Whether the label column is an Arrow integer column (nullable or not); True when the
    snapshot has no rows."""
    for batch in ctx.snapshot.to_batches([ctx.label_column], None, batch_size=ctx.batch_size):
        return bool(pa.types.is_integer(batch.schema.field(ctx.label_column).type))
    return True


def _integer_batches(ctx: SelectionContext) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """The eligible rows of an integer label column as ``(keys, labels, valid)`` batches: the
    labels exact (:func:`~policies._columns.integer_column`, never through float64), ``valid``
    their validity (``None``: no label missing); the rows of :func:`~policies._stream.iter_rows`."""
    col = ctx.label_column
    read = list(dict.fromkeys(["key", col]))
    for batch in ctx.snapshot.to_batches(read, None, batch_size=ctx.batch_size):
        keys = column_to_numpy(batch.column("key"))
        values, valid = integer_column(batch.column(col))
        mask = eligible_mask(keys, excluded=ctx.excluded, candidates=ctx.candidates)
        if mask is not None:
            keys, values = keys[mask], values[mask]
            valid = None if valid is None else valid[mask]
        if valid is not None and valid.all():
            valid = None
        if keys.size:
            yield keys, values, valid


def _distinct_integer_labels(ctx: SelectionContext) -> tuple[np.ndarray, int]:
    """The sorted distinct (present) integer labels of the eligible rows, exactly, and the
    number of eligible rows."""
    seen: set[int] = set()
    n = 0
    dtype = np.dtype(np.int64)
    for _, values, valid in _integer_batches(ctx):
        n += int(values.size)
        dtype = values.dtype
        seen.update(np.unique(values if valid is None else values[valid]).tolist())
    return np.array(sorted(seen), dtype=dtype), n


#: the group of a missing label of an integer column in :meth:`ClassBalanced._one_pass` (after
#: every label, as NaN sorts); used only when no label equals it
MISSING_GROUP = np.iinfo(np.int64).max

#: integers a float64 holds exactly: a label read as float64 beyond them may have been rounded
_FLOAT_EXACT = 2**53


def label_groups(values: np.ndarray, labels: np.ndarray | None,
                 valid: np.ndarray | None = None) -> np.ndarray:
    """The quota group of each label value (int64).

    ``labels`` None: the value itself (integer labels); a missing one (``valid`` False) is
    :data:`MISSING_GROUP`, which the caller must know no present label equals. Otherwise the
    position of the value in the sorted distinct ``labels`` (from ``label_counts``, or the
    exact integer labels), a missing one the position after them.

    Integer labels are read exactly with :func:`~policies._columns.integer_column` (values and
    validity). A nullable integer column read by ``column_to_numpy`` is float64 in a batch holding
    a null (NaN for null): such values are taken as integers again (a NaN is missing) only
    within ``±2**53``, where float64 is exact; a larger one may have been rounded into another
    label and is refused with :class:`InvalidArgumentError`.
    """
    if labels is not None:
        g = np.searchsorted(labels, fill_missing_labels(values))
        return g if valid is None else np.where(valid, g, labels.size)
    if values.dtype.kind == "f":
        missing = np.isnan(values)
        present = np.where(missing, 0.0, values)
        if present.size and float(np.max(np.abs(present))) > _FLOAT_EXACT:
            bad = int(np.flatnonzero(np.abs(present) > _FLOAT_EXACT)[0])
            raise InvalidArgumentError(
                f"labels[{bad}]", float(values[bad]), "integer labels within 2**53 when read as "
                "float64 (a nullable integer column with a null; read it exactly with "
                "policies._columns.integer_column)")
        return np.where(missing, MISSING_GROUP, present.astype(np.int64))
    g = values.astype(np.int64, copy=False)
    return g if valid is None else np.where(valid, g, MISSING_GROUP)
