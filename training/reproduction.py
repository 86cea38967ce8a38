"""Reproduce a recorded training from the store's history.

:func:`reproduce` rebuilds the exact train set of a training (same keys, weights, epoch plans
and, for the recorded seed, the same order), checks that every key can still be returned, and
retrains with the recorded configuration on CPU with deterministic algorithms (a DDP training
with as many local gloo ranks as it had: see :mod:`training.distributed`) on rows read from
the store for the reproduction, never from the store's cache of materialized rows (which the
training read, and which a reproduction would otherwise only agree with). It then compares
the new weights with the stored checkpoint bit for bit. After an erasure it refuses: it raises
:class:`~training.errors.ErasedKeysError` naming the keys it can no longer return, and never
substitutes other rows.

Example
-------
>>> import numpy as np, pyarrow as pa
>>> from modyn_store import Store, TrainSet
>>> from training.trainer import TrainConfig, train
>>> from training.reproduction import reproduce
>>> store = Store.open("memory://reproduce-doc", create=True)
>>> x = np.random.default_rng(1).standard_normal((40, 2)).astype(np.float32)
>>> _ = store.append(pa.table({"ts": np.arange(40), "label": (x[:, 1] > 0).astype(np.int64),
...                            "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
>>> cfg = TrainConfig(model="logreg", model_params={"in_features": 2, "n_classes": 2}, batch_size=8, seed=3)
>>> first = train(store, TrainSet.uniform(np.arange(40), version=1), cfg, training_id="t1")
>>> reproduce(store, "t1").identical
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from modyn_store.core._validate import check_int
from modyn_store.core.trainings import Catalog
from modyn_store.core.trainset import TrainSet
from training.errors import ErasedKeysError, ReproductionError
from training.loading import LoaderOptions, epoch_order
from training.trainer import Prepare, TrainConfig, state_equal, train

__all__ = ["Reproduction", "reproduce", "reproduce_train_set", "visit_order"]


@dataclass(frozen=True)
class Reproduction:
    """The outcome of :func:`reproduce`.

    ``identical`` is True when every tensor of the new state dict equals the stored checkpoint
    bit for bit; ``mismatched`` names the tensors that differ.
    """

    training_id: str
    train_set: TrainSet
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    identical: bool
    mismatched: tuple[str, ...]


def reproduce_train_set(store: Any, training_id: str) -> TrainSet:
    """The train set of ``training_id``, after checking that every key is still live at its version.

    Raises
    ------
    ErasedKeysError
        Lists the keys that were erased (or purged) since the training.
    """
    ts = Catalog(store).train_set(training_id)
    snap = store.as_of(ts.version)
    live = snap.keys()
    gone = ts.keys[~np.isin(ts.keys, live)]
    unavailable = snap.unavailable()
    if unavailable.size:
        gone = np.union1d(gone, ts.keys[np.isin(ts.keys, unavailable)])
    if gone.size:
        raise ErasedKeysError(f"training {training_id!r}", gone)
    return ts


def visit_order(store: Any, training_id: str, epoch: int) -> np.ndarray:
    """The keys in the order ``training_id`` visited them in ``epoch`` (seeded, as recorded):
    one of its epochs, ``0 <= epoch < epochs`` (``InvalidArgumentError`` naming ``epoch``
    otherwise; an epoch it never ran has no order to give)."""
    rec = Catalog(store).get(training_id)
    if not rec.config:  # (the defaults' seed and shuffle would give an order it never used)
        raise ReproductionError(f"training {training_id!r} stored no trainer configuration")
    cfg = TrainConfig.from_json(rec.config)
    epoch = check_int("epoch", epoch, lo=0, hi=cfg.epochs - 1)
    ts = reproduce_train_set(store, training_id)
    return ts.keys[epoch_order(ts, epoch, shuffle=cfg.shuffle, seed=cfg.seed)]


def reproduce(
    store: Any,
    training_id: str,
    *,
    model: Callable[[], nn.Module] | None = None,
    prepare: Prepare | None = None,
    loader_options: LoaderOptions | None = None,
    downsample: Any = None,
) -> Reproduction:
    """Retrain ``training_id`` on CPU, deterministically, and compare with its stored checkpoint.

    A training that reselected its train set during training (``reselect``) is retrained on the
    recorded set of each epoch in turn, as it was: its first epoch's set first (the one its
    input scale was fitted to), then each later epoch's.

    Parameters
    ----------
    store:
        The store that recorded the training.
    training_id:
        The training to reproduce.
    model:
        A zero-argument model factory, needed only when the training was not built from a
        model name (the same factory the training used; it is called after seeding).
    prepare:
        The same ``prepare`` the training used, if any.
    loader_options:
        Tuning of the loader; its ``shared_cache`` is always ``False`` here (the rows are read
        from the store into process memory, see :class:`~training.loading.LoaderOptions`).
    downsample:
        The same ``downsample`` the training used (batch then sample: it chose the rows each
        batch trained on); required for such a training.

    Raises
    ------
    ErasedKeysError
        Keys of the train set can no longer be returned (erased or purged); lists them.
    ReproductionError
        The training stored no configuration or checkpoint to compare with, or it sampled its
        batches and no ``downsample`` was given.
    CorruptionError
        The recorded train set's rows or the checkpoint are not the ones recorded (their digest).
    """
    catalog = Catalog(store)
    rec = catalog.get(training_id)
    ts = reproduce_train_set(store, training_id)
    if not rec.config:
        raise ReproductionError(f"training {training_id!r} stored no trainer configuration")
    if rec.checkpoint is None:
        raise ReproductionError(f"training {training_id!r} stored no checkpoint to compare with")
    recorded = TrainConfig.from_json(rec.config)
    # a CPU training with amp ran under bfloat16 autocast, which the CPU replays exactly; a CUDA
    # training's float16 autocast and gradient scaler have no CPU counterpart
    amp = recorded.amp and torch.device(recorded.device).type == "cpu"
    cfg = replace(recorded, device="cpu", deterministic=True, amp=amp)
    if model is None and not cfg.model:
        raise ReproductionError(
            f"training {training_id!r} used a model passed in code; pass model= built the same way"
        )
    if downsample is None and rec.metrics.get("batch_then_sample"):
        raise ReproductionError(
            f"training {training_id!r} trained each batch on the rows a strategy chose (batch then "
            "sample); pass downsample= the same strategy (`modyn-store reproduce` builds it from "
            "the recorded selection)")
    # the train set's rows as the store returns them, not the cache entry the training read: an
    # entry changed since it was built would give the same weights and hide it
    loader_options = replace(loader_options or LoaderOptions(), shared_cache=False)
    parent = rec.parent_id if cfg.mode == "finetune" else None
    world = int(rec.metrics.get("world_size", 1))
    hooks: dict[str, Any] = {} if downsample is None else {"downsample": downsample}
    first = ts  # what training starts on: the recorded set, or its first epoch's (reselection)
    if rec.metrics.get("reselections") and ts.per_epoch is not None and world == 1:
        first, hooks["reselect"] = _epoch_by_epoch(ts)
        hooks["reselect_every"] = 1
    if world > 1:
        # a DDP training is reproduced with as many local CPU ranks (gloo)
        from training.distributed import spawn_training

        kwargs: dict[str, Any] = {"model": model, "parent_id": parent, "record": False, "prepare": prepare,
                                  "loader_options": loader_options}
        new_state = spawn_training(store, ts, cfg, world_size=world, **kwargs)
        assert isinstance(new_state, dict)
    else:
        result = train(
            store,
            first,
            cfg,
            model=model,
            parent_id=parent,
            record=False,
            prepare=prepare,
            loader_options=loader_options,
            **hooks,
        )
        new_state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    stored = catalog.load_checkpoint(rec.checkpoint)
    bad = tuple(state_equal(new_state, stored))
    return Reproduction(training_id, ts, new_state, not bad, bad)


def _epoch_by_epoch(ts: TrainSet) -> tuple[TrainSet, Callable[[nn.Module], TrainSet]]:
    """The recorded train set of a training that reselected, as its first epoch's set and a
    ``reselect`` that returns the set of each later epoch in turn (called before epochs 1, 2, ...)."""
    assert ts.per_epoch is not None
    sets = [ts.epoch_set(e) for e in range(len(ts.per_epoch))]
    epoch = [0]

    def reselect(model: nn.Module) -> TrainSet:
        epoch[0] += 1
        return sets[epoch[0] % len(sets)]

    return sets[0], reselect
