"""``GDumb``: a greedy class-balanced memory of ``memory`` samples; retrain from scratch."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from modyn_store.core._validate import check_int
from modyn_store.core.trainset import TrainSet
from policies._pick import derive_seed, trainset
from policies._stream import iter_rows
from policies.base import SelectionContext, SelectionStrategy, register

__all__ = ["GDumb"]


@register("gdumb")
class GDumb(SelectionStrategy):
    """GDumb's greedy sampler (Prabhu et al., 2020) over the samples new since the last trigger.

    Each new sample (in storage order) enters the memory while it has room; when full, a sample
    of a class with fewer than ``memory / classes seen`` samples replaces a random sample of the
    currently largest class (ties: the smallest label). Deleted and erased samples leave the
    memory. With enough samples per class the memory holds exactly ``memory // C`` or
    ``memory // C + 1`` samples of each of the C classes. GDumb retrains from scratch on the
    memory each time (``update_hint = "retrain"``).

    Parameters
    ----------
    memory:
        Memory size, >= 1.

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

    def __init__(self, memory: int = 1000) -> None:
        self.memory = check_int("memory", memory, 1)
        self._mem: dict[Any, list[int]] = {}
        self._size = 0

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"memory": 30}]

    def expected_size(self, n: int) -> int:
        """The train set size once ``n`` samples have been seen (and none removed)."""
        return min(n, self.memory)

    def _drop_gone(self, ctx: SelectionContext) -> None:
        keys = np.array(sorted(k for v in self._mem.values() for k in v), dtype=np.int64)
        if keys.size == 0:
            return
        contains = getattr(ctx.snapshot, "contains", None)
        live = (np.asarray(contains(keys), dtype=bool) if contains is not None
                else np.isin(keys, ctx.snapshot.keys()))
        live &= ~np.isin(keys, ctx.excluded)
        gone = set(keys[~live].tolist())
        if gone:
            self._mem = {c: [k for k in v if k not in gone] for c, v in self._mem.items()}
            self._mem = {c: v for c, v in self._mem.items() if v}
            self._size = sum(len(v) for v in self._mem.values())

    def _add(self, key: int, label: Any, rng: np.random.Generator) -> None:
        if self._size < self.memory:
            self._mem.setdefault(label, []).append(key)
            self._size += 1
            return
        n_classes = len(self._mem) + (label not in self._mem)
        if len(self._mem.get(label, ())) >= self.memory / n_classes:
            return
        top = max(len(v) for v in self._mem.values())
        largest = min((c for c, v in self._mem.items() if len(v) == top), key=_label_key)
        victims = self._mem[largest]
        victims.pop(int(rng.integers(len(victims))))
        self._mem.setdefault(label, []).append(key)

    def _select(self, ctx: SelectionContext) -> TrainSet:
        self._drop_gone(ctx)
        since = ctx.trigger_cutoffs[-1] if ctx.trigger_cutoffs else None
        rng = np.random.default_rng(derive_seed(ctx.seed, 8, ctx.trigger_index))
        for b in iter_rows(ctx, [ctx.label_column], since=since):
            for key, label in zip(b["key"].tolist(), b[ctx.label_column].tolist()):
                self._add(key, label, rng)
        keys = np.sort(np.array([k for v in self._mem.values() for k in v], dtype=np.int64))
        return trainset(keys, ctx)


def _label_key(label: Any) -> tuple[str, Any]:
    """Sort key of labels (ties between classes go to the smallest label)."""
    return (type(label).__name__, label)
