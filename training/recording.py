"""Saving a trained model and recording its training, as one step that leaves nothing behind.

:func:`save_and_record` writes a model's checkpoint, then records the training in the catalog;
a checkpoint whose record fails is removed, and a training refused because its keys were erased
while it trained raises :class:`~training.errors.ErasedKeysError`. :func:`training.train` and
:func:`training.distributed.train_distributed` end with it. :func:`refuse_erased` removes the
saved progress of a training refused so, wherever the refusal is raised (when the loader finds
keys erased, or when the record is refused).

Example
-------
>>> import numpy as np, torch
>>> from modyn_store import Store, TrainSet
>>> from modyn_store.core.trainings import Catalog
>>> from training.recording import save_and_record
>>> from training.train_config import TrainConfig
>>> import pyarrow as pa
>>> store = Store.open("memory://recording-doc", create=True)
>>> _ = store.append(pa.table({"ts": np.arange(4)}))
>>> rec = save_and_record(Catalog(store), "t1", torch.nn.Linear(2, 2), TrainSet.uniform(np.arange(4), version=1),
...                       TrainConfig(model="logreg", batch_size=2))
>>> rec.training_id, rec.n_keys
('t1', 4)
"""

from __future__ import annotations

import time
from typing import Any

from torch import nn

from modyn_store.core.errors import DataUnavailableError, UnknownKeyError
from modyn_store.core.trainings import Catalog, CheckpointRef, TrainingRecord
from modyn_store.core.trainset import TrainSet
from training.errors import ErasedKeysError
from training.progress import Progress, cpu_state
from training.train_config import TrainConfig

__all__ = ["refuse_erased", "save_and_record"]


def save_and_record(catalog: Catalog, training_id: str, net: nn.Module, train_set: TrainSet,
                     config: TrainConfig, started: float | None = None, progress: Progress | None = None,
                     **record: Any) -> TrainingRecord:
    """Write ``net``'s checkpoint, then record the training (``record``: the other arguments
    of :meth:`Catalog.record_training`); a checkpoint whose record fails is removed. With
    ``started`` (a ``perf_counter`` time), the metrics get ``train_wall_s``: the seconds from then
    until the checkpoint is written (all of the training's time but the record's own write).
    ``progress`` (this training's) is removed when the record fails on an id that the catalog
    holds (another process recorded it meanwhile: the progress can never be gone on from)."""
    ckpt: CheckpointRef | None = None
    try:
        catalog.check_unused(training_id)  # again: another training may have taken the id meanwhile
        ckpt = catalog.save_checkpoint(training_id, cpu_state(net))  # (extra state checked by save_checkpoint)
        if started is not None:
            record["metrics"] = {**dict(record.get("metrics") or {}), "train_wall_s": time.perf_counter() - started}
        return catalog.record_training(training_id, train_set, checkpoint=ckpt, seed=config.seed,
                                       config=config.to_json(), **record)
    except BaseException as exc:
        try:
            kept, taken = catalog.get(training_id).checkpoint, True
        except UnknownKeyError:
            kept, taken = None, False
        if taken and progress is not None:
            try:
                progress.finish()
            except Exception:  # pragma: no cover - best effort, the original error matters
                pass
        # not recorded with this file: none may stay behind
        if ckpt is not None and (kept is None or kept.uri != ckpt.uri):
            try:
                catalog.store.fs.rm(catalog.store.path(ckpt.uri))
            except Exception:  # pragma: no cover - best effort, the original error matters
                pass
        if isinstance(exc, DataUnavailableError) and not isinstance(exc, ErasedKeysError) and exc.keys is not None:
            raise ErasedKeysError(f"training {training_id!r}", exc.keys) from exc  # erased while it trained
        raise


def refuse_erased(progress: Progress | None, exc: ErasedKeysError) -> BaseException:
    """The error to raise for a training refused with ``exc`` (keys of its train set were erased
    while it trained): ``exc``, once ``progress`` (this training's saved progress, if any) is
    removed, since its saved state learned from rows that are gone. An error removing it is
    returned instead, with ``exc`` as its context (the progress may still be there)."""
    if progress is not None:
        try:
            progress.finish()
        except Exception as gone:
            gone.__context__ = exc
            return gone
    return exc
