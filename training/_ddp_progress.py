"""Progress checkpoints of a distributed training (``train_distributed(..., save_every=N)``).

The saves go through :class:`training.progress.Progress`, as those of :func:`training.train`;
what this module adds is the ranks' agreement:

- :func:`open_progress`: every rank opens the saved progress; all of them go on from the same
  save, or all raise. Rank 0 holds the training's lock (:mod:`training._training_lock`) until
  the training returns.
- :func:`save_step`: at a save, every rank hands its own generators and counters to rank 0
  (``all_gather_object``), rank 0 writes the one progress file and its pointer, and every rank
  waits for that write (and raises if it failed) before its next step. A rank killed at any
  moment thus leaves one saved position for all ranks: the last file rank 0 finished.
- :func:`epoch_batches`: a rank's batches of an epoch, its first one read in every rank before
  any steps: where a rank's loader finds keys of the train set erased there
  (:class:`~training.errors.ErasedKeysError`), every rank raises it, rank 0 once it removed the
  training's progress (saved from rows that are gone), the other ranks once rank 0 is done; any
  other error a rank's loader raises there is raised in every rank too.
- :func:`resume_epoch`: a rank's batches from a global step on. DDP ranks shard every global
  batch of ``batch_size`` rows into ``batch_size / world_size`` rows each
  (``positions[rank::world_size]``), so a rank's batch ``b`` belongs to global step ``b``; a
  rank whose shard has one batch fewer takes part in the epoch's last step with its last batch
  at zero weight, which the resumed rank reads again.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.distributed as dist

from modyn_store.core.errors import CorruptionError, ModynStoreError
from modyn_store.core.trainings import Catalog
from training.errors import ErasedKeysError
from training.progress import Progress
from training.recording import refuse_erased
from training.targets import TargetCheck

__all__ = ["epoch_batches", "open_progress", "resume_epoch", "save_step"]


def open_progress(catalog: Catalog, training_id: str, every: int, fp: str) -> Progress:
    """The progress of ``training_id`` in this rank (see :meth:`Progress.open`; saved with this
    world size). Call it in every rank: if any rank cannot open it, every rank raises (the
    rank's own error; the failed rank's, where it is one of the store's typed errors, else a
    ``RuntimeError`` naming that rank), and the ranks go on
    only from one and the same save."""
    rank, world = dist.get_rank(), dist.get_world_size()
    progress: Progress | None = None
    error: BaseException | None = None
    try:
        progress = Progress.open(catalog, training_id, every, fp, world_size=world, rank=rank)
        mine: Any = ("ok", progress.start)
    except Exception as exc:
        # the store's typed errors go to the other ranks as they are (all_gather_object pickles
        # them), so every rank raises the same one, whichever torch's launcher reports
        error, mine = exc, ("error", exc if isinstance(exc, ModynStoreError) else f"{type(exc).__name__}: {exc}")
    seen: list[Any] = [None] * world
    try:
        dist.all_gather_object(seen, mine)
        if error is not None:
            raise error
        for r, (kind, what) in enumerate(seen):
            if kind == "error":
                if isinstance(what, ModynStoreError):
                    raise what  # (a refused lock's ConflictError, in every rank)
                raise RuntimeError(f"rank {r} could not open the progress of training {training_id!r}: {what}")
        if any(s != seen[0] for s in seen):
            raise CorruptionError(f"the ranks of training {training_id!r} found different progress saves "
                                  f"(epoch, batch by rank: {[s[1] for s in seen]})")
    except BaseException:
        if progress is not None:
            progress.close()  # rank 0's lock of the training (see training._training_lock)
        raise
    assert progress is not None
    return progress


def epoch_batches(dl: Any, epoch: int, skipped: int, steps: int, resume: bool, progress: Progress | None,
                  red: torch.device) -> tuple[Iterator[Any], Any]:
    """This rank's batches of ``epoch`` and the batch its filler steps repeat (with ``resume``,
    the epoch a progress goes on from: from global step ``skipped`` on, see :func:`resume_epoch`).
    The epoch's first batch is read here, in every rank before any step: a rank whose loader
    raises :class:`~training.errors.ErasedKeysError` (keys erased since the last epoch) makes
    every rank raise one, rank 0 after removing ``progress`` (see
    :func:`training.recording.refuse_erased`), the others after rank 0 is done with it. Any other
    error a rank's loader raises there is raised by that rank, and by every other one as a
    ``RuntimeError`` naming it, so that no rank waits for the failed one in a later reduction."""
    rank, world = dist.get_rank(), dist.get_world_size()
    erased: ErasedKeysError | None = None
    other: Exception | None = None
    it: Iterator[Any] = iter(())
    last: Any = None
    try:
        it, last = resume_epoch(dl, epoch, skipped, steps) if resume else (iter(dl), None)
        first = next(it, None)  # (the loader checks the train set's keys as it starts the epoch)
        it = itertools.chain((first,), it) if first is not None else it
    except ErasedKeysError as exc:
        erased = exc
    except Exception as exc:  # any rank's failure reaches every rank: none waits in a later reduction
        other = exc
    flags = torch.tensor([float(erased is not None), float(other is not None)], dtype=torch.float64, device=red)
    dist.all_reduce(flags)  # (one small reduction an epoch)
    if not flags.any():
        return it, last
    if not flags[0].item():
        _raise_failed(other, epoch, rank, world)
    seen: list[Any] = [None] * world
    dist.all_gather_object(seen, erased)
    if erased is None:  # this rank's loader had not looked yet: the first rank's keys
        erased = next(e for e in seen if e is not None)
    status: list[Any] = [None]
    failed: BaseException = erased
    if rank == 0:
        failed = refuse_erased(progress, erased)
        status[0] = None if failed is erased else f"{type(failed).__name__}: {failed}"
    dist.broadcast_object_list(status, src=0)  # no rank raises before rank 0 removed the progress
    if other is not None:
        raise other  # this rank's own failure (another rank found the keys erased)
    if rank != 0 and status[0] is not None:
        raise RuntimeError(f"rank 0 could not remove the progress of training "
                           f"{progress.training_id if progress else None!r}: {status[0]}") from erased
    raise failed


def _raise_failed(own: Exception | None, epoch: int, rank: int, world: int) -> None:
    """Raise, in every rank, the failure of the ranks whose loader failed as ``epoch`` started
    (another error than erased keys): a rank its own error, the others the first failed rank's
    error if it is one of the store's typed errors (as it was raised), else a ``RuntimeError``
    naming that rank and its error."""
    seen: list[Any] = [None] * world
    dist.all_gather_object(seen, own if own is None or isinstance(own, ModynStoreError)
                           else f"{type(own).__name__}: {own}")
    if own is not None:
        raise own
    first = next(r for r, e in enumerate(seen) if e is not None)
    if isinstance(seen[first], ModynStoreError):
        raise seen[first]
    raise RuntimeError(f"rank {first}'s loader failed as epoch {epoch} started: {seen[first]}")


def resume_epoch(dl: Any, epoch: int, step: int, steps: int) -> tuple[Iterator[Any], Any]:
    """This rank's batches of ``epoch`` from global step ``step`` on (``steps`` in the epoch),
    and the batch its filler steps repeat when its shard ended before ``step`` (else ``None``:
    the loop keeps the last batch it serves)."""
    n = dl.num_batches(epoch)
    if 0 < n <= step < steps:  # the shard is done: the remaining steps repeat its last batch
        dl.set_epoch(epoch, n - 1)
        it = iter(dl)
        return it, next(it)
    dl.set_epoch(epoch, min(step, n))
    return iter(dl), None


def save_step(progress: Progress, epoch: int, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer,
              scaler: Any, check: TargetCheck, red: torch.device, shared: Mapping[str, Any],
              own: Mapping[str, Any]) -> None:
    """Save the training before global step ``step`` of ``epoch``, in every rank at once (see the
    module docstring). ``shared``: counters every rank holds alike; ``own``: this rank's own.
    Invalid targets counted so far raise first, in every rank alike."""
    rank, world = dist.get_rank(), dist.get_world_size()
    pending = torch.tensor([float(check.pending())], dtype=torch.float64, device=red)
    dist.all_reduce(pending)
    check.finish(epoch, int(pending.item()))
    states: list[Any] = [None] * world
    dist.all_gather_object(states, progress.rank_state(own))
    status: list[Any] = [None]
    failed: BaseException | None = None
    if rank == 0:
        try:
            progress.save(epoch, step, model, opt, scaler, shared, ranks=states)
        except Exception as exc:
            failed, status[0] = exc, f"{type(exc).__name__}: {exc}"
    dist.broadcast_object_list(status, src=0)  # no rank steps on before the save is written
    if failed is not None:
        raise failed
    if status[0] is not None:
        raise RuntimeError(f"rank 0 could not save the progress of training {progress.training_id!r}: {status[0]}")
