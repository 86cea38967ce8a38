"""What the runner does around a selection strategy: scores, the irreducible-loss model, training hooks.

:class:`SelectionRuntime` gives a strategy what its ``requires`` asks for and turns its mode into
the training API's hooks:

- ``score:<name>`` of the registry's model scoring pass: one forward pass of the current model
  over the snapshot (``training.score``, not written to the store);
- ``score:irreducible_loss`` (RHO-LOSS): the runner carves the strategy's holdout split from the
  eligible rows (``strategy.holdout(ctx)``), trains the irreducible-loss model on it from scratch
  and records it in the catalog as training ``<id>-irreducible`` (its train set is the holdout, so
  erasure lineage covers it), then scores the snapshot with it; the main training records the
  model's id under ``policy_params["irreducible_model"]``;
- ``mode="batch_then_sample"``: ``training.train(downsample=strategy)`` (RHO-LOSS: an adapter
  that passes each batch's irreducible losses, looked up by key);
- ``mode="sample_then_batch"`` with ``period=p > 0``: ``training.train(reselect=..., reselect_every=p)``,
  which rescores with the model being trained and selects again every ``p`` epochs.

Example
-------
>>> from modyn_store.app.pipeline.selection import provided_score
>>> provided_score("loss", object()), provided_score("irreducible_loss", object())
(True, False)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine import score_registry

__all__ = ["SelectionRuntime", "provided_score", "recorded_downsample"]

IRREDUCIBLE = "irreducible_loss"


def provided_score(name: str, strategy: Any) -> bool:
    """Whether the runner can provide score ``name`` to ``strategy``."""
    spec = score_registry.SCORES.get(name)
    if spec is None:
        return False
    if spec.computed_by == score_registry.MODEL_PASS:
        return True
    return name == IRREDUCIBLE and callable(getattr(strategy, "holdout", None))


@dataclass
class _RhoBatches:
    """``score_batch`` of a RHO-LOSS strategy with each batch's irreducible losses looked up by key."""

    strategy: Any
    keys: np.ndarray
    values: np.ndarray
    needs_labels: bool = True
    needs_hidden: bool = False

    def score_batch(self, logits: np.ndarray, labels: np.ndarray | None = None, *,
                    hidden: np.ndarray | None = None, keys: np.ndarray | None = None) -> np.ndarray:
        from modyn_store.core.errors import InvalidArgumentError

        k = np.asarray(keys, dtype=np.int64)
        pos = np.searchsorted(self.keys, k)
        pos = np.minimum(pos, max(self.keys.size - 1, 0))
        if self.keys.size == 0 or not np.array_equal(self.keys[pos], k):
            raise InvalidArgumentError("keys", "rows without an irreducible loss",
                                       "batch rows scored by the irreducible-loss model")
        return np.asarray(self.strategy.score_batch(logits, labels, keys=k, irreducible_loss=self.values[pos]))

    def choose_in_batch(self, scores: np.ndarray, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
        return self.strategy.choose_in_batch(scores, seed=seed)  # type: ignore[no-any-return]


@dataclass
class SelectionRuntime:
    """Scores and hooks for one pipeline's strategies (see the module docstring).

    Parameters
    ----------
    store:
        The pipeline's store.
    inputs:
        Model forward argument -> column.
    train_config:
        ``train_config("scratch")`` gives the training configuration of a fresh model.
    pipeline:
        The pipeline's name (recorded with the irreducible-loss model).
    """

    store: Any
    inputs: Mapping[str, str]
    train_config: Callable[[str], Any]
    pipeline: str
    #: ``(rows scored, seconds)`` of the last :meth:`prepare`.
    scoring: tuple[int, float] = (0, 0.0)
    #: Facts to record with the training of the last :meth:`prepare`.
    lineage: dict[str, Any] = field(default_factory=dict)
    _irreducible: tuple[np.ndarray, np.ndarray] | None = None
    #: A :class:`~modyn_store.app.pipeline.config.RayConfig`: scoring passes run on Ray.
    ray: Any = None

    def _score(self, module: Any, names: tuple[str, ...], version: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        import training

        if self.ray is not None:
            from modyn_store.app.pipeline.ray_exec import score_on_ray

            res = score_on_ray(self.store, module, inputs=dict(self.inputs), version=version, scores=names,
                               write=False, batch_size=4096, workers=self.ray.workers)
            self.lineage["scored_on_ray"] = sorted({*self.lineage.get("scored_on_ray", ()), *names})
            return {n: (res.keys, res.values[n]) for n in names}
        res = training.score(self.store, module, inputs=dict(self.inputs), version=version, scores=names,
                             write=False, batch_size=4096)
        return {n: (res.keys, res.values[n]) for n in names}

    def prepare(self, strategy: Any, ctx: Any, module: Any, training_id: str, cutoff: tuple[int, int]) -> Any:
        """``ctx`` with the scores ``strategy`` requires (training the irreducible-loss model if needed)."""
        t0 = time.perf_counter()
        self.lineage = {}
        self._irreducible = None
        needs = sorted(r[6:] for r in strategy.requires if r.startswith("score:"))
        model_pass = tuple(n for n in needs if n != IRREDUCIBLE)
        computed: dict[str, Any] = dict(ctx.computed_scores)
        rows = 0
        if model_pass:
            computed.update(self._score(module, model_pass, ctx.version))
            rows += int(computed[model_pass[0]][0].size)
        holdout = strategy.holdout(ctx) if IRREDUCIBLE in needs else None
        if holdout is not None and holdout.size == 0:
            # no eligible row: nothing to train the irreducible-loss model on, and the selection
            # is empty (the firing is skipped, see limits.min_train_rows)
            computed[IRREDUCIBLE] = (np.empty(0, np.int64), np.empty(0, np.float64))
        elif holdout is not None:
            il_model, il_id = self._irreducible_model(strategy, holdout, training_id, cutoff)
            computed.update({IRREDUCIBLE: self._score(il_model, ("irreducible_loss",), ctx.version)[IRREDUCIBLE]})
            keys, values = computed[IRREDUCIBLE]
            order = np.argsort(keys)
            self._irreducible = (np.asarray(keys)[order], np.asarray(values)[order])
            rows += int(keys.size)
            self.lineage["irreducible_model"] = il_id
        self.scoring = (rows, time.perf_counter() - t0)
        return ctx.replace(computed_scores=computed)

    def _irreducible_model(self, strategy: Any, holdout: Any, training_id: str,
                           cutoff: tuple[int, int]) -> tuple[Any, str]:
        import training
        from modyn_store.core.errors import UnknownKeyError
        from modyn_store.core.trainings import Catalog

        il_id = f"{training_id}-irreducible"
        cfg = self.train_config("scratch")
        cat = Catalog(self.store)
        try:
            cat.get(il_id)
        except UnknownKeyError:
            res = training.train(
                self.store, holdout, cfg, training_id=il_id, policy=f"{strategy.name}:irreducible_loss_model",
                policy_params={"pipeline": self.pipeline, "for_training": training_id,
                               "selection": strategy.to_config()},
                cutoff=cutoff, metrics={"role": "irreducible_loss_model", "for_training": training_id})
            return res.model, il_id
        return training.load_model(self.store, il_id), il_id  # recorded before a restart: reuse it

    def hooks(self, strategy: Any, ctx: Any) -> dict[str, Any]:
        """Keyword arguments of ``training.train`` that run ``strategy``'s mode and period."""
        mode = getattr(strategy, "mode", None)
        if mode == "batch_then_sample":
            if self._irreducible is not None:
                return {"downsample": _RhoBatches(strategy, *self._irreducible)}
            return {"downsample": strategy}
        period = int(getattr(strategy, "period", 0) or 0)
        if mode == "sample_then_batch" and period > 0:
            names = tuple(sorted(r[6:] for r in strategy.requires
                                 if r.startswith("score:") and r[6:] != IRREDUCIBLE))

            def reselect(model: Any) -> Any:
                rescored = {**ctx.computed_scores, **self._score(model, names, ctx.version)}
                return strategy.select(ctx.replace(computed_scores=rescored))

            return {"reselect": reselect, "reselect_every": period}
        return {}


def recorded_downsample(store: Any, record: Any) -> Any:
    """The ``downsample`` that chose each batch's rows of the batch-then-sample training ``record``,
    built again from its recorded selection (``None`` for a training that did not sample its
    batches). A RHO-LOSS strategy gets each row's irreducible loss from the irreducible-loss
    model recorded with it (``policy_params["irreducible_model"]``), computed for the keys of the
    training's train set; :class:`~training.errors.ReproductionError` when none is recorded."""
    import policies
    from modyn_store.core.trainings import Catalog
    from training.errors import ReproductionError

    params = record.policy_params if isinstance(record.policy_params, Mapping) else {}
    selection = params.get("selection")
    if not record.metrics.get("batch_then_sample") or not isinstance(selection, Mapping):
        return None
    strategy = policies.from_config("selection", dict(selection))  # the strategy that chose each batch's rows
    if not any(r == f"score:{IRREDUCIBLE}" for r in getattr(strategy, "requires", ())):
        return strategy
    il_id = params.get("irreducible_model")
    if not isinstance(il_id, str):
        raise ReproductionError(f"training {record.training_id!r} chose each batch's rows by irreducible losses, "
                                "and no irreducible-loss model is recorded with it; pass downsample= in code")
    import training
    from training.loading import LoaderOptions
    from training.reproduction import reproduce_train_set
    from training.trainer import TrainConfig

    module = training.load_model(store, il_id)
    cfg = TrainConfig.from_json(Catalog(store).get(il_id).config)  # its inputs and label
    res = training.score(store, module, inputs=dict(cfg.inputs), label=cfg.label,
                         train_set=reproduce_train_set(store, record.training_id), scores=(IRREDUCIBLE,), write=False,
                         batch_size=4096, loader_options=LoaderOptions(shared_cache=False))  # the store's rows
    keys = np.asarray(res.keys, dtype=np.int64)
    order = np.argsort(keys)
    return _RhoBatches(strategy, keys[order], np.asarray(res.values[IRREDUCIBLE])[order])
