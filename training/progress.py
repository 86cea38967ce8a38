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

``training.distributed.train_distributed(..., save_every=N)`` saves through the same class: rank
0 writes one file holding the shared state (model, optimizer, scaler, the epoch and the next
global step) and every rank's own generators and counters (``ranks``), and its pointer holds
``world_size``. Such a progress goes on only with as many ranks; :func:`train` and
``train_distributed`` with another world size refuse it (``InvalidArgumentError`` naming
``world_size``).

A pointer saved for another configuration, train set, parent or model shape is refused
(:class:`~modyn_store.core.errors.InvalidArgumentError` naming ``training_id``); a damaged
progress file (or one whose digest matches but which holds other contents than a save writes)
raises :class:`~modyn_store.core.errors.CorruptionError`. :func:`discard_progress` removes a
training's progress, so that the next run starts over; it never removes the checkpoint the
catalog records for the training, even where a damaged pointer names it.

One process at a time saves a training's progress: the saving process holds the training's lock
(:mod:`training._training_lock`) from :meth:`Progress.open` to :meth:`Progress.close`, and
another training of that id with ``save_every``, or :func:`discard_progress` of it, is refused
meanwhile with :class:`~modyn_store.core.errors.ConflictError`.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from modyn_store.core._plainjson import read_json
from modyn_store.core._validate import check_name
from modyn_store.core.errors import CorruptionError, DataUnavailableError, InvalidArgumentError, UnknownKeyError
from modyn_store.core.trainings import CHECKPOINT_NONCE, Catalog, CheckpointRef
from modyn_store.core.trainset import TrainSet
from training._training_lock import TrainingLock

__all__ = ["Progress", "check_save_every", "check_world_size", "cpu_state", "discard_other_progress", "discard_progress",
           "saved_progress"]

#: the keys a progress pointer holds (one saved by ``train_distributed`` also ``world_size``)
_POINTER_KEYS = {"uri", "sha256", "fingerprint", "epoch", "batch"}


def _owned(uri: Any, training_id: str) -> bool:
    """Whether ``uri`` names a checkpoint file of ``training_id`` (not one of another id that
    merely starts with it, such as ``<id>.b``)."""
    return isinstance(uri, str) and re.fullmatch(
        rf"models/{re.escape(training_id)}\.[0-9a-f]{{{CHECKPOINT_NONCE}}}\.pt\.zst", uri) is not None


def cpu_state(model: torch.nn.Module) -> dict[str, Any]:
    """``model``'s state dict with its tensors detached and on the CPU (what a checkpoint holds;
    extra state from ``get_extra_state`` is kept as it is)."""
    return {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in model.state_dict().items()}


def _pointer(training_id: str) -> str:
    return f"models/{check_name('training_id', training_id)}.progress.json"


def saved_progress(store: Any, training_id: str) -> dict[str, Any] | None:
    """The progress pointer of ``training_id`` (``uri``, ``sha256``, ``fingerprint``, ``epoch``,
    ``batch``: the next batch to train; ``world_size`` when ``train_distributed`` saved it), or
    ``None`` when none is saved."""
    path = store.path(_pointer(training_id))
    if not store.fs.exists(path):
        return None
    try:
        with store.fs.open(path, "rb") as fh:
            ptr = read_json(fh.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptionError(f"progress pointer {_pointer(training_id)!r} is not JSON: {exc}") from exc
    if not isinstance(ptr, dict) or set(ptr) - {"world_size"} != _POINTER_KEYS or \
            not (ptr.get("world_size") is None or _positive(ptr["world_size"])):
        raise CorruptionError(f"progress pointer {_pointer(training_id)!r} does not hold {sorted(_POINTER_KEYS)} "
                              "(and, saved by train_distributed, a world_size >= 1)")
    return ptr


def _check_state(uri: str, state: Mapping[str, Any], world_size: int | None) -> None:
    """``CorruptionError`` naming ``uri`` unless the loaded progress ``state`` holds what
    :meth:`Progress.restore` and the training loop read, of the types they read: a file with
    the right digest may still have been written by something else than :meth:`Progress.save`."""
    def counters(loop: Any) -> bool:
        return isinstance(loop, dict) and all(
            isinstance(loop.get(k, 0), (int, float)) and not isinstance(loop.get(k, 0), bool)
            for k in ("total", "rows", "samples", "device_s", "wall_s")) and \
            isinstance(loop.get("losses", []), list) and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in loop.get("losses", []))

    def own(part: Any) -> bool:
        return isinstance(part, dict) and isinstance(part.get("rng"), torch.Tensor) and \
            isinstance(part.get("cuda_rng"), list) and counters(part.get("loop"))

    sums = {"total"} if world_size is not None else {"total", "rows"}

    def resumable(part: dict[str, Any]) -> bool:  # an epoch interrupted part way needs its sums so far
        return state["batch"] == 0 or sums <= {*state["loop"], *part["loop"]}

    parts = state.get("ranks") if world_size is not None else [state]
    ok = isinstance(state.get("model"), Mapping) and isinstance(state.get("optimizer"), Mapping) and \
        (state.get("scaler") is None or isinstance(state.get("scaler"), Mapping)) and \
        _natural(state.get("epoch")) and _natural(state.get("batch")) and counters(state.get("loop")) and \
        isinstance(parts, list) and all(own(r) and resumable(r) for r in parts)
    if not ok:
        raise CorruptionError(f"progress file {uri!r} does not hold a saved progress (model, optimizer, scaler, "
                              "epoch, batch, generators and counters of the types a save writes)")


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_world_size(training_id: str, saved: Any, world_size: int | None) -> None:
    """``InvalidArgumentError`` naming ``world_size`` unless a progress saved with ``saved`` ranks
    (``None``: by :func:`train`, one process) goes on in ``world_size`` ranks (``None``: :func:`train`)."""
    if saved == world_size:
        return
    how = "train (one process)" if saved is None else f"train_distributed in {saved} ranks"
    now = "train (one process)" if world_size is None else f"train_distributed in {world_size} ranks"
    raise InvalidArgumentError(
        "world_size", world_size if world_size is not None else "train (one process)",
        f"the progress of {training_id!r} saved by {how} (save_every goes on only with the same "
        f"world_size, not with {now}): run it so, or discard_progress(store, {training_id!r}) to start over")


def discard_progress(store: Any, training_id: str) -> bool:
    """Remove the saved progress of ``training_id`` (its pointer, then its file); ``True`` if
    there was one. The next ``train(..., save_every=N)`` under that id starts over.

    Refused with :class:`~modyn_store.core.errors.ConflictError` while another process trains
    that id with ``save_every`` (its next save would bring the progress back; see
    :mod:`training._training_lock`)."""
    with TrainingLock(store, training_id).acquire("discard its progress"):
        return _discard(store, training_id)


def _discard(store: Any, training_id: str) -> bool:
    """:func:`discard_progress` by the holder of the training's lock."""
    try:
        ptr = saved_progress(store, training_id)
    except CorruptionError:
        ptr = None
    path = store.path(_pointer(training_id))
    if not store.fs.exists(path):
        return False
    # the file to remove is decided before the pointer goes (a catalog read that fails leaves
    # both, not a file that nothing names)
    owned = ptr is not None and _owned(ptr.get("uri"), training_id)
    target = store.path(ptr["uri"]) if owned and ptr is not None and \
        ptr["uri"] != _recorded_uri(store, training_id) else None
    store.fs.rm(path)
    if target is not None and store.fs.exists(target):
        store.fs.rm(target)
    return True


def _recorded_uri(store: Any, training_id: str) -> str | None:
    """The checkpoint file the catalog records for ``training_id`` (``None``: none recorded).
    A damaged or crafted pointer may name it; removing a progress never removes it."""
    try:
        ref = Catalog(store).get(training_id).checkpoint
    except UnknownKeyError:
        return None
    return None if ref is None else ref.uri


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
    (``None``: the training starts at its first batch). ``world_size`` and ``rank``: those of a
    ``train_distributed`` rank (``world_size=None``: :func:`train`); its saves hold every rank's
    generators and counters, and :meth:`restore` gives each rank its own.
    """

    catalog: Catalog
    training_id: str
    every: int
    fingerprint: str
    restored: dict[str, Any] | None = None
    world_size: int | None = None
    rank: int = 0
    _since: int = 0
    _ref: CheckpointRef | None = field(default=None, repr=False)
    _lock: TrainingLock | None = field(default=None, repr=False)
    _finished: bool = field(default=False, repr=False)

    @classmethod
    def open(cls, catalog: Catalog, training_id: str, every: int, fp: str, *, world_size: int | None = None,
             rank: int = 0) -> Progress:
        """The progress of ``training_id``: restored from its saved pointer when there is one
        (which must have been saved with this ``world_size``, see :func:`check_world_size`).
        The process that saves (``rank`` 0) holds the training's lock from here until
        :meth:`close` (:class:`~modyn_store.core.errors.ConflictError` when another process
        holds it, see :mod:`training._training_lock`)."""
        p = cls(catalog, training_id, every, fp, world_size=world_size, rank=rank)
        if rank == 0:
            p._lock = TrainingLock(catalog.store, training_id).acquire()
        try:
            if rank == 0:
                # again, holding the lock: a training of this id that held it until it recorded
                # (after this one's first check) leaves the id used
                catalog.check_unused(training_id)
            p._load()
        except BaseException:
            p.close()
            raise
        return p

    def _load(self) -> None:
        """Restore from the saved pointer of this training, when there is one (see :meth:`open`)."""
        catalog, training_id, fp, world_size = self.catalog, self.training_id, self.fingerprint, self.world_size
        ptr = saved_progress(catalog.store, training_id)
        if ptr is None:
            return
        if ptr["fingerprint"] != fp:
            raise InvalidArgumentError(
                "training_id", training_id,
                "an id whose saved progress was made by this configuration, train set and parent "
                "(training.progress.discard_progress(store, id) removes it, or pass another id)")
        check_world_size(training_id, ptr.get("world_size"), world_size)
        uri = ptr["uri"]
        if not _owned(uri, training_id):
            raise CorruptionError(f"progress pointer of {training_id!r} names {uri!r}, not a file of that training")
        self._ref = CheckpointRef(uri, str(ptr["sha256"]))
        try:
            state = catalog.load_checkpoint(self._ref)
        except DataUnavailableError as exc:
            raise DataUnavailableError(f"{exc} (the progress of training {training_id!r}); "
                                       "training.progress.discard_progress(store, id) starts over") from exc
        if state.get("fingerprint") != fp or state.get("epoch") != ptr["epoch"] or \
                state.get("batch") != ptr["batch"] or state.get("world_size") != world_size or \
                (world_size is not None and len(state.get("ranks") or ()) != world_size):
            raise CorruptionError(f"progress file {uri!r} does not match its pointer")
        _check_state(uri, state, world_size)
        self.restored = state

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

    def rank_state(self, loop: Mapping[str, Any]) -> dict[str, Any]:
        """This process's own part of a save (torch's generators and ``loop``, its counters),
        which every rank of a distributed training hands to rank 0's :meth:`save`; the count
        towards the next save starts over."""
        self._since = 0
        return {"rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "loop": dict(loop)}

    def save(self, epoch: int, batch: int, model: torch.nn.Module, opt: torch.optim.Optimizer,
             scaler: Any, loop: Mapping[str, Any], ranks: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Save the state before batch ``batch`` of ``epoch`` (``loop``: the loop's own counters;
        ``ranks``: with ``world_size``, every rank's :meth:`rank_state`, in rank order)."""
        if (ranks is None) != (self.world_size is None) or (ranks is not None and len(ranks) != self.world_size):
            raise InvalidArgumentError("ranks", None if ranks is None else f"{len(ranks)} states",
                                       f"one state per rank ({self.world_size} ranks)" if self.world_size
                                       else "None (a progress of one process)")
        state = {
            "fingerprint": self.fingerprint, "epoch": int(epoch), "batch": int(batch), "model": cpu_state(model),
            "optimizer": opt.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None,
            **self.rank_state(loop),  # this process's generators and counters (the count starts over)
        }
        ptr: dict[str, Any] = {"fingerprint": self.fingerprint, "epoch": int(epoch), "batch": int(batch)}
        if ranks is not None:
            state.update(world_size=self.world_size, ranks=[dict(r) for r in ranks])
            ptr["world_size"] = self.world_size
        store = self.catalog.store
        ref = self.catalog.save_checkpoint(self.training_id, state)
        ptr.update(uri=ref.uri, sha256=ref.sha256)
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
        """Load the saved states into ``model``, ``opt`` and ``scaler`` and torch's generators
        (a distributed training's: this rank's); returns the loop's counters, this rank's own
        among them (``{}`` when nothing was saved)."""
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
        own = s["ranks"][self.rank] if self.world_size is not None else s
        torch.set_rng_state(own["rng"])
        if own["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(own["cuda_rng"])
        return {**s["loop"], **own["loop"]} if own is not s else dict(s["loop"])

    def finish(self) -> None:
        """The training is done: remove its progress files (and give its lock back). Once done,
        a second call does nothing (another process may hold the id's lock and progress by then)."""
        if self._finished:
            return
        _discard(self.catalog.store, self.training_id)
        if self._ref is not None and self.catalog.store.fs.exists(self.catalog.store.path(self._ref.uri)):
            self.catalog.store.fs.rm(self.catalog.store.path(self._ref.uri))
        self.close(remove=True)
        self._finished = True

    def close(self, remove: bool = False) -> None:
        """Give the training's lock back (the progress files stay, for a rerun to go on from;
        ``remove``: its lock file goes too)."""
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release(remove)
