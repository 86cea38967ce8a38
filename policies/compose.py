"""``Compose``: presample with one strategy, then downsample the result with another."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine._search import intersect_keys
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies.base import SelectionContext, SelectionStrategy, from_config, register

__all__ = ["Compose"]


@register("compose")
class Compose(SelectionStrategy):
    """Run ``pre`` on the context, then ``post`` restricted to ``pre``'s keys.

    The weights multiply; the per-epoch plans are ``post``'s. E.g. class-balanced 50% then
    loss 25%: ``Compose(pre=ClassBalanced(ratio=0.5), post=Loss(ratio=0.25))``.

    Parameters
    ----------
    pre, post:
        Selection strategies (instances or configs).

    Example
    -------
    >>> from policies import Compose
    >>> c = Compose(pre={"name": "class_balanced", "ratio": 0.5}, post={"name": "loss", "ratio": 0.25})
    >>> sorted(c.requires)
    ['score:loss']
    """

    def __init__(self, pre: Any = None, post: Any = None) -> None:
        self.pre = from_config("selection", pre if pre is not None else {"name": "all_data"}, arg="pre")
        self.post = from_config("selection", post if post is not None else {"name": "all_data"},
                                arg="post")

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"pre": {"name": "class_balanced", "ratio": 0.5},
                 "post": {"name": "loss", "ratio": 0.5, "limit": 20}}]

    @property
    def requires(self) -> frozenset[str]:  # type: ignore[override]
        return self.pre.requires | self.post.requires

    @property
    def stateful(self) -> bool:  # type: ignore[override]
        return bool(self.pre.stateful or self.post.stateful)

    def expected_size(self, n: int) -> int | None:
        """The train set size for ``n`` eligible samples, when both stages know theirs."""
        pre = getattr(self.pre, "expected_size", None)
        post = getattr(self.post, "expected_size", None)
        if pre is None or post is None:
            return None
        m = pre(n)
        return None if m is None else post(m)

    def _select(self, ctx: SelectionContext) -> TrainSet:
        first = self.pre.select(ctx)
        cand = first.keys if ctx.candidates is None else intersect_keys(first.keys, ctx.candidates)
        second = self.post.select(ctx.replace(candidates=cand))
        outside = ~np.isin(second.keys, cand)
        if outside.any():  # its weight would be taken from another row of ``pre``
            raise InvalidArgumentError("post", f"{self.post!r} selected key {int(second.keys[outside][0])}",
                                       "a strategy that selects among pre's keys (ctx.candidates)")
        order = np.argsort(first.keys)
        pos = order[np.searchsorted(first.keys[order], second.keys)]
        return TrainSet(keys=second.keys, weights=second.weights * first.weights[pos],
                        version=second.version, per_epoch=second.per_epoch)
