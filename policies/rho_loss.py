"""``RhoLoss``: reducible holdout loss selection (Mindermann et al., 2022)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from modyn_store.core._validate import check_float
from modyn_store.core.errors import InvalidArgumentError, engine_errors
from modyn_store.core.trainset import TrainSet
from policies._pick import all_keys, derive_seed, score_source, trainset, uniform_keys
from policies._stream import count_rows
from policies.base import SelectionContext, register
from policies.score_based import ScoreDownsample

__all__ = ["RhoLoss"]


@register("rho_loss")
class RhoLoss(ScoreDownsample):
    """Keep the samples of largest reducible loss: training loss minus irreducible loss.

    A share ``holdout_ratio`` of the eligible samples is the holdout split
    (:meth:`holdout`): the runner trains the irreducible-loss model on it, scores the other
    samples with that model and stores the losses as score ``irreducible_loss``; the current
    model's losses are score ``loss``. ``select`` never returns a holdout sample and ranks the
    rest by ``engine.scores.rho_loss(loss, irreducible_loss)``. Mindermann et al. select the top
    of each large batch under the model being trained: ``mode="batch_then_sample"``; the default
    ``sample_then_batch`` ranks the rows once per trigger with the model in service (cheaper).

    Parameters
    ----------
    ratio, limit, method, mode, period:
        As for :class:`~policies.score_based.ScoreDownsample`.
    holdout_ratio:
        Share of the eligible samples held out for the irreducible-loss model, in (0, 1).

    Example
    -------
    >>> RhoLoss(ratio=0.1).requires == {"score:loss", "score:irreducible_loss"}
    True
    """

    score: ClassVar[str] = "rho_loss"

    def __init__(self, ratio: float = 0.25, limit: int | None = None, method: str = "top",
                 mode: str = "sample_then_batch", period: int = 0,
                 holdout_ratio: float = 0.1) -> None:
        super().__init__(ratio=ratio, limit=limit, method=method, mode=mode, period=period)
        self.holdout_ratio = check_float("holdout_ratio", holdout_ratio, 0.0, 1.0, lo_open=True,
                                         hi_open=True)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"ratio": 0.25, "limit": 30, "holdout_ratio": 0.2}]

    @property
    def requires(self) -> frozenset[str]:  # type: ignore[override]
        if self.mode == "batch_then_sample":
            return frozenset({"model", "score:irreducible_loss"})
        return frozenset({"score:loss", "score:irreducible_loss"})

    def holdout(self, ctx: SelectionContext) -> TrainSet:
        """The holdout split to train the irreducible-loss model on (uniform, seeded)."""
        n = count_rows(ctx)
        k = max(1, int(round(self.holdout_ratio * n))) if n else 0
        return trainset(uniform_keys(ctx, k, seed=derive_seed(ctx.seed, 11)), ctx)

    def score_batch(self, logits: np.ndarray, labels: np.ndarray | None = None, *,
                    hidden: np.ndarray | None = None, keys: np.ndarray | None = None,
                    irreducible_loss: np.ndarray | None = None) -> np.ndarray:
        """Reducible loss of one batch: cross-entropy of ``logits`` minus ``irreducible_loss``.

        ``irreducible_loss`` is aligned with the batch rows (the runner looks it up by ``keys``).
        """
        from engine import scores as sc

        with engine_errors():
            loss = np.asarray(sc.cross_entropy(logits, labels))
            if irreducible_loss is None:
                raise InvalidArgumentError("irreducible_loss", None,
                                           "the irreducible-loss model's loss of each batch row")
            return np.asarray(sc.rho_loss(loss, np.asarray(irreducible_loss, dtype=np.float64)))

    def _select(self, ctx: SelectionContext) -> TrainSet:
        from engine import scores as sc

        hold = self.holdout(ctx).keys
        rest = ctx.replace(candidates=np.setdiff1d(
            ctx.candidates if ctx.candidates is not None else all_keys(ctx), hold,
            assume_unique=True))
        if self.mode == "batch_then_sample":
            return super()._select(rest)
        lk, lv = self._collect(rest, "loss")
        ik, iv = self._collect(rest, "irreducible_loss")
        # the rows ranked are those with a loss (as for the other score strategies); each needs
        # its irreducible loss, or its reducible loss is unknown (a batch refuses it the same way)
        order = np.argsort(ik, kind="stable")
        ik, iv = ik[order], iv[order]
        pos = np.minimum(np.searchsorted(ik, lk), max(ik.size - 1, 0))
        missing = np.flatnonzero(ik[pos] != lk) if ik.size else np.arange(lk.size)
        if missing.size:
            raise InvalidArgumentError(
                "scores['irreducible_loss']",
                f"none for {missing.size} of {lk.size} rows with a loss (keys {lk[missing[:5]].tolist()})",
                "an irreducible loss for every eligible row with a loss (score them with the irreducible-loss model)")
        values = np.asarray(sc.rho_loss(lv, iv[pos]))
        scored = rest.replace(computed_scores={**rest.computed_scores, "rho_loss": (lk, values)})
        return super()._select(scored)

    def _collect(self, ctx: SelectionContext, name: str) -> tuple[np.ndarray, np.ndarray]:
        """All ``(keys, values)`` batches of score ``name`` as two arrays (keys unique), the values
        as float64 (integers beyond ``2**53`` refused, as by the other score strategies)."""
        parts = list(score_source(ctx, name)())
        if not parts:
            return np.empty(0, np.int64), np.empty(0)
        keys = [np.asarray(k, dtype=np.int64) for k, _ in parts]
        values = [self._as_float(v, _key_of(k), name) for k, (_, v) in zip(keys, parts)]
        return np.concatenate(keys), np.concatenate(values)


def _key_of(keys: np.ndarray) -> Callable[[int], str]:
    """The row name of position ``i`` of a batch of ``keys`` (in errors)."""
    return lambda i: f"key {int(keys[i])}"
