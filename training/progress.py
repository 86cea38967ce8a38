"""Progress checkpoints: a training stopped part way (killed, out of memory, a preempted machine)
goes on from its last saved batch instead of starting over.

``train(..., training_id=ID, save_every=N)`` saves, after every ``N`` batches (at the first
optimizer step boundary from there: a group of ``grad_accum`` batches is never split), what the
optimization has reached: the model's and the optimizer's state, the AMP scaler, torch's random
number generators, the epoch and the next batch, the running epoch loss and the cost so far. It
goes into the store beside the trainings' checkpoints: ``models/<ID>.<nonce>.pt.zst`` (hashed,
loaded with ``torch.load(weights_only=True)``) and a pointer ``models/<ID>.progress.json`` that
names it, replaced atomically by each save. The same call run again finds the pointer and goes
on from it: the loader serves the rest of the interrupted epoch (:meth:`Loader.set_epoch` with
``start_batch``), and on the CPU with ``deterministic=True`` the final weights, epoch losses and
sample count are those of an uninterrupted run, bit for bit. When the training is done (and
recorded) the progress files are removed.

A pointer saved for another configuration, train set, parent or model shape is refused
(:class:`~modyn_store.core.errors.InvalidArgumentError` naming ``training_id``); a damaged
progress file raises :class:`~modyn_store.core.errors.CorruptionError`. :func:`discard_progress`
removes a training's progress, so that the next run starts over.

Example
-------
>>> import numpy as np, pyarrow as pa
>>> from modyn_store import Store, TrainSet
>>> from training.trainer import TrainConfig, train
>>> store = Store.open("memory://progress-doc", create=True)
>>> x = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)
>>> _ = store.append(pa.table({"ts": np.arange(64), "label": (x[:, 0] > 0).astype(np.int64),
...                            "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 3)}))
>>> cfg = TrainConfig(model="logreg", model_params={"in_features": 3, "n_classes": 2},
...                   inputs={"features": "x"}, epochs=2, batch_size=16, lr=0.5)
>>> result = train(store, TrainSet.uniform(np.arange(64), version=1), cfg, training_id="t-p", save_every=2)
>>> result.cost.samples, saved_progress(store, "t-p") is None
(128, True)
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from modyn_store.core._validate import check_name
from modyn_store.core.errors import CorruptionError, DataUnavailableError, InvalidArgumentError
from modyn_store.core.trainings import CHECKPOINT_NONCE, Catalog, CheckpointRef
from modyn_store.core.trainset import TrainSet

__all__ = ["Progress", "check_save_every", "discard_other_progress", "discard_progress", "saved_progress"]

#: the keys a progress pointer holds
_POINTER_KEYS = {"uri", "sha256", "fingerprint", "epoch", "batch"}


def _owned(uri: Any, training_id: str) -> bool:
    """Whether ``uri`` names a checkpoint file of ``training_id`` (not one of another id that
    merely starts with it, such as ``<id>.b``)."""
    return isinstance(uri, str) and re.fullmatch(
        rf"models/{re.escape(training_id)}\.[0-9a-f]{{{CHECKPOINT_NONCE}}}\.pt\.zst", uri) is not None


def _pointer(training_id: str) -> str:
    return f"models/{check_name('training_id', training_id)}.progress.json"


def saved_progress(store: Any, training_id: str) -> dict[str, Any] | None:
    """The progress pointer of ``training_id`` (``uri``, ``sha256``, ``fingerprint``, ``epoch``,
    ``batch``: the next batch to train), or ``None`` when none is saved."""
    path = store.path(_pointer(training_id))
    if not store.fs.exists(path):
        return None
    try:
        with store.fs.open(path, "rb") as fh:
            ptr = json.loads(fh.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptionError(f"progress pointer {_pointer(training_id)!r} is not JSON: {exc}") from exc
    if not isinstance(ptr, dict) or set(ptr) != _POINTER_KEYS:
        raise CorruptionError(f"progress pointer {_pointer(training_id)!r} does not hold {sorted(_POINTER_KEYS)}")
    return ptr


def discard_progress(store: Any, training_id: str) -> bool:
    """Remove the saved progress of ``training_id`` (its pointer, then its file); ``True`` if
    there was one. The next ``train(..., save_every=N)`` under that id starts over."""
    try:
        ptr = saved_progress(store, training_id)
    except CorruptionError:
        ptr = None
    path = store.path(_pointer(training_id))
    if not store.fs.exists(path):
        return False
    store.fs.rm(path)
    if ptr is not None and _owned(ptr.get("uri"), training_id):
        target = store.path(ptr["uri"])
        if store.fs.exists(target):
            store.fs.rm(target)
    return True


def discard_other_progress(store: Any, training_id: str, config: Any, train_set: TrainSet,
                           parent_id: str | None) -> bool:
    """Remove the saved progress of ``training_id`` unless it was saved for this ``config`` (a
    ``TrainConfig``), ``train_set`` and ``parent_id``; ``True`` if one was removed. A runner that
    picks its training ids itself calls it before ``train(..., save_every=N)``: a train set
    selected again after an erasure is another training, which starts over instead of being
    refused."""
    saved = saved_progress(store, training_id)  # a damaged pointer raises: damage is never skipped
    if saved is None or saved["fingerprint"] == fingerprint(config.to_json(), train_set, parent_id):
        return False
    return discard_progress(store, training_id)


def check_save_every(save_every: Any, training_id: str | None, choosing: bool) -> None:
    """``InvalidArgumentError`` unless ``save_every`` is an integer >= 0 and, when it is not 0,
    ``training_id`` is given and the training makes no choices of its own (``choosing``:
    batch-then-sample or reselection, whose choices a progress does not hold)."""
    if isinstance(save_every, bool) or not isinstance(save_every, int) or save_every < 0:
        raise InvalidArgumentError("save_every", save_every, "an integer >= 0 (batches between progress saves; 0: never)")
    if save_every and training_id is None:
        raise InvalidArgumentError("training_id", None, "an id of your own when save_every > 0 (a rerun finds its "
                                   "progress by it)")
    if save_every and choosing:
        raise InvalidArgumentError("save_every", save_every,
                                   "0 with downsample or reselect (their choices are not saved with the progress)")


def fingerprint(config_json: Mapping[str, Any], train_set: TrainSet, parent_id: str | None) -> str:
    """What a saved progress must have been saved for: the configuration, the train set and the parent."""
    text = json.dumps({"config": dict(config_json), "train_set": train_set.digest(), "parent": parent_id},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Progress:
    """Saves and restores one training's progress (see the module docstring).

    ``every``: batches between saves; ``restored``: the state loaded from a saved progress
    (``None``: the training starts at its first batch).
    """

    catalog: Catalog
    training_id: str
    every: int
    fingerprint: str
    restored: dict[str, Any] | None = None
    _since: int = 0
    _ref: CheckpointRef | None = field(default=None, repr=False)

    @classmethod
    def open(cls, catalog: Catalog, training_id: str, every: int, fp: str) -> Progress:
        """The progress of ``training_id``: restored from its saved pointer when there is one."""
        p = cls(catalog, training_id, every, fp)
        ptr = saved_progress(catalog.store, training_id)
        if ptr is None:
            return p
        if ptr["fingerprint"] != fp:
            raise InvalidArgumentError(
                "training_id", training_id,
                "an id whose saved progress was made by this configuration, train set and parent "
                "(training.progress.discard_progress(store, id) removes it, or pass another id)")
        uri = ptr["uri"]
        if not _owned(uri, training_id):
            raise CorruptionError(f"progress pointer of {training_id!r} names {uri!r}, not a file of that training")
        p._ref = CheckpointRef(uri, str(ptr["sha256"]))
        try:
            state = catalog.load_checkpoint(p._ref)
        except DataUnavailableError as exc:
            raise DataUnavailableError(f"{exc} (the progress of training {training_id!r}); "
                                       "training.progress.discard_progress(store, id) starts over") from exc
        if state.get("fingerprint") != fp or state.get("epoch") != ptr["epoch"] or \
                state.get("batch") != ptr["batch"]:
            raise CorruptionError(f"progress file {uri!r} does not match its pointer")
        p.restored = state
        return p

    @property
    def start(self) -> tuple[int, int]:
        """(epoch, batch) the training goes on from."""
        if self.restored is None:
            return 0, 0
        return int(self.restored["epoch"]), int(self.restored["batch"])

    def due(self) -> bool:
        """Count one batch; whether a save is due (checked at optimizer step boundaries)."""
        self._since += 1
        return self._since >= self.every

    def save(self, epoch: int, batch: int, model: torch.nn.Module, opt: torch.optim.Optimizer,
             scaler: Any, loop: Mapping[str, Any]) -> None:
        """Save the state before batch ``batch`` of ``epoch`` (``loop``: the loop's own counters)."""
        self._since = 0
        state = {
            "fingerprint": self.fingerprint, "epoch": int(epoch), "batch": int(batch),
            "model": {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v
                      for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "loop": dict(loop),
        }
        store = self.catalog.store
        ref = self.catalog.save_checkpoint(self.training_id, state)
        ptr = {"uri": ref.uri, "sha256": ref.sha256, "fingerprint": self.fingerprint, "epoch": int(epoch),
               "batch": int(batch)}
        tmp = store.path(f"models/.{self.training_id}.progress.{uuid.uuid4().hex[:12]}.tmp")
        try:
            with store.fs.open(tmp, "wb") as fh:
                fh.write(json.dumps(ptr, sort_keys=True).encode())
            store.fs.mv(tmp, store.path(_pointer(self.training_id)))
        except BaseException:
            for path in (tmp, store.path(ref.uri)):
                if store.fs.exists(path):
                    store.fs.rm(path)
            raise
        old, self._ref = self._ref, ref
        if old is not None and old.uri != ref.uri and store.fs.exists(store.path(old.uri)):
            store.fs.rm(store.path(old.uri))

    def restore(self, model: torch.nn.Module, opt: torch.optim.Optimizer, scaler: Any) -> dict[str, Any]:
        """Load the saved states into ``model``, ``opt`` and ``scaler`` and torch's generators;
        returns the loop's counters (``{}`` when nothing was saved)."""
        s = self.restored
        if s is None:
            return {}
        try:
            model.load_state_dict(s["model"])
        except RuntimeError as exc:
            raise InvalidArgumentError(
                "training_id", self.training_id,
                f"an id whose saved progress fits this model ({exc}); discard_progress removes it") from exc
        opt.load_state_dict(s["optimizer"])
        if scaler is not None and s["scaler"] is not None:
            scaler.load_state_dict(s["scaler"])
        torch.set_rng_state(s["rng"])
        if s["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(s["cuda_rng"])
        return dict(s["loop"])

    def finish(self) -> None:
        """The training is done: remove its progress files."""
        discard_progress(self.catalog.store, self.training_id)
        if self._ref is not None and self.catalog.store.fs.exists(self.catalog.store.path(self._ref.uri)):
            self.catalog.store.fs.rm(self.catalog.store.path(self._ref.uri))
