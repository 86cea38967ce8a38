"""Distributed training with torch DDP: one process per rank, each reading its shard.

:func:`train_distributed` runs in every rank of an initialized ``torch.distributed`` process
group (gloo on CPU, nccl on GPU) and trains the same model as :func:`training.train` over the
same **global** batches: ``config.batch_size`` is the global batch, each rank takes
``batch_size / world_size`` rows of it (the loader's shard ``positions[rank::world_size]``),
and each rank's loss is scaled so that DDP's gradient average equals the single-process
gradient of the whole global batch. A rank that runs out of rows in an epoch's last step takes
part in it with a zero-weight batch, so uneven shards neither hang nor bias the result and the
optimizer state stays identical on every rank. Rank 0
alone writes the checkpoint and records the training (with ``world_size`` in its metrics, so
:func:`training.reproduce` re-runs it with as many local CPU ranks); the other ranks wait for
that record and return it too. With ``save_every=N`` rank 0 also saves the training's progress
(with every rank's own generators and counters) every ``N`` global steps, and the same call in
as many ranks goes on from it (:mod:`training.progress`, :mod:`training._ddp_progress`).

Launchers, none of them home-made schedulers:

- ``torchrun --nproc-per-node N -m training.distributed --store URI --train-set SET.npz
  --config CONFIG.json`` (one machine or several, see ``docs/scale-out.md``);
- :func:`train_on_ray`: Ray Train's ``TorchTrainer`` on a Ray cluster;
- :func:`spawn`: N local processes with gloo (tests, reproduction).

Example
-------
>>> import numpy as np, pyarrow as pa, tempfile
>>> from modyn_store import Store, TrainSet
>>> from training.trainer import TrainConfig
>>> from training.distributed import spawn_training
>>> path = tempfile.mkdtemp()
>>> store = Store.open(path, create=True)
>>> x = np.random.default_rng(0).standard_normal((32, 3)).astype(np.float32)
>>> _ = store.append(pa.table({"ts": np.arange(32), "label": (x[:, 0] > 0).astype(np.int64),
...                            "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 3)}))
>>> cfg = TrainConfig(model="logreg", model_params={"in_features": 3, "n_classes": 2}, batch_size=8)
>>> rec = spawn_training(path, TrainSet.uniform(np.arange(32), version=1), cfg, world_size=2, training_id="d1")
>>> rec.metrics["world_size"], rec.cost.samples
(2, 32)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from modyn_store.core.errors import InvalidArgumentError, ModynStoreError
from modyn_store.core.trainings import Catalog, Cost, TrainingRecord
from modyn_store.core.trainset import TrainSet
from training._rank_setup import group_backend, json_options, open_store, store_address
from training._ddp_progress import epoch_batches, open_progress, save_step
from training._spawn import _leave, spawn
from training.errors import ErasedKeysError, check_loss
from training.loading import LoaderOptions, loader
from training.progress import Progress, check_save_every, check_world_size, fingerprint, saved_progress
from training.targets import TargetCheck
from training.train_config import check_metrics
from training.train_set_files import load_train_set, save_train_set
from training.recording import refuse_erased, save_and_record
from training.trainer import (Prepare, TrainConfig, TrainResult, _optimizer, _step, deterministic,
                              loss_per_sample, model_inputs, scale_inputs, start_model)

__all__ = [
    "load_train_set",
    "save_train_set",
    "spawn",
    "spawn_training",
    "train_distributed",
    "train_on_ray",
]


def _group() -> tuple[int, int]:
    if not dist.is_available() or not dist.is_initialized():
        raise InvalidArgumentError(
            "torch.distributed", "not initialized",
            "a process group (run under torchrun, Ray Train's TorchTrainer or training.distributed.spawn)",
        )
    return dist.get_rank(), dist.get_world_size()


def _step_rows(n: int, batch_size: int, step: int) -> int:
    """Rows of global step ``step`` of an epoch of ``n`` rows."""
    return min(batch_size, n - step * batch_size)


def _group_rows(n: int, batch_size: int, grad_accum: int, step: int) -> int:
    """Rows of the accumulation group (``grad_accum`` global steps) that step ``step`` belongs to."""
    start = (step // grad_accum) * grad_accum * batch_size
    return min(n, start + grad_accum * batch_size) - start


def _fit_rank(
    ddp: DistributedDataParallel,
    dl: Any,
    train_set: TrainSet,
    config: TrainConfig,
    prepare: Prepare | None,
    progress: Progress | None = None,
) -> tuple[Cost, tuple[float, ...]]:
    """The optimization loop of one rank; returns the global cost and mean epoch losses.

    Every rank runs the same number of steps, ``ceil(rows / batch_size)`` per epoch: a rank
    whose shard ran out repeats its last batch with zero weights, so it adds nothing to the
    gradient but takes part in DDP's all-reduce and in the optimizer step, and the optimizer
    state (momentum, Adam moments) stays the same on every rank. ``progress`` goes on from its
    saved global step and saves every ``progress.every`` steps (see :mod:`training._ddp_progress`).
    """
    dev = torch.device(config.device)
    opt = _optimizer(config, ddp.parameters())
    cuda = dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if (config.amp and cuda) else None
    amp_dtype = torch.float16 if cuda else torch.bfloat16
    world = dist.get_world_size()
    # what ranks sum lives where the backend reduces it: nccl reduces device tensors only
    red = dev if dist.get_backend() == "nccl" else torch.device("cpu")
    loop = progress.restore(ddp.module, opt, scaler) if progress is not None else {}
    samples = int(loop.get("samples", 0))
    device_s = float(loop.get("device_s", 0.0))
    losses: list[float] = list(loop.get("losses", []))
    t0 = time.perf_counter() - float(loop.get("wall_s", 0.0))
    check = TargetCheck(config.loss, config.label, defer=True)  # every rank raises, or none
    start_epoch, start_step = progress.start if progress is not None else (0, 0)
    for epoch in range(start_epoch, config.epochs):
        n = int(train_set.for_epoch(epoch).size)
        if n < world:
            raise InvalidArgumentError(
                "train_set", f"{n} rows in epoch {epoch}", f"at least one row per rank ({world} ranks)"
            )
        steps = -(-n // config.batch_size)
        skipped = start_step if epoch == start_epoch else 0
        total = torch.tensor([float(loop["total"]) if skipped else 0.0], dtype=torch.float64, device=red)
        step_in = 0
        opt.zero_grad(set_to_none=True)
        it, last = epoch_batches(dl, epoch, skipped, steps, progress is not None and epoch == start_epoch,
                                 progress, red)
        for step in range(skipped, steps):
            batch: Any = next(it, None)
            filler = batch is None
            if filler:
                batch = last  # this rank's shard is done: a zero-weight stand-in
            last = batch
            c0 = time.perf_counter()
            args = prepare(batch) if prepare is not None else model_inputs(batch, config.inputs)
            args = {k: v.to(dev, non_blocking=True) for k, v in args.items()}
            target = batch[config.label].to(dev, non_blocking=True)
            weight = batch["weight"].to(dev, non_blocking=True)
            if filler:
                weight = torch.zeros_like(weight)
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=config.amp):
                logits = ddp(**args)
            target = check(logits, target, batch["key"], counted=not filler)
            per = loss_per_sample(config.loss, logits, target)
            part = (per * weight).sum()
            # DDP averages over ranks: scale so the average is sum(w * loss) / global rows of the
            # accumulation group (for a group of full steps: each step's mean / grad_accum)
            rows = _step_rows(n, config.batch_size, step)
            group = _group_rows(n, config.batch_size, config.grad_accum, step)
            loss = part * (world / rows)
            scaled = loss / config.grad_accum if group == rows * config.grad_accum else part * (world / group)
            if scaler is not None:
                scaler.scale(scaled).backward()
            else:
                scaled.backward()
            step_in += 1
            if step_in == config.grad_accum:
                _step(opt, scaler)
                step_in = 0
            if not filler:
                samples += int(per.shape[0])
                total += part.detach().double().to(red)  # no wait for the step where red is its device
            device_s += time.perf_counter() - c0
            if progress is not None and progress.due() and step_in == 0:
                save_step(progress, epoch, step + 1, ddp.module, opt, scaler, check, red,
                          {"losses": losses, "wall_s": time.perf_counter() - t0},
                          {"total": float(total.item()), "samples": samples, "device_s": device_s})
        if next(it, None) is not None:  # pragma: no cover - the loader's shards guarantee it
            raise RuntimeError(f"rank {dist.get_rank()} has more than {steps} batches in epoch {epoch}")
        if step_in:
            _step(opt, scaler)
        both = torch.cat([total, torch.tensor([float(check.pending())], dtype=torch.float64, device=red)])
        dist.all_reduce(both)
        total = both[:1]
        check.finish(epoch, int(both[1].item()))
        losses.append(check_loss(epoch, float(total.item()) / n))
    counts = torch.tensor([float(samples), device_s], dtype=torch.float64, device=red)
    dist.all_reduce(counts)
    return Cost(int(counts[0].item()), time.perf_counter() - t0, float(counts[1].item())), tuple(losses)


def train_distributed(
    store: Any,
    train_set: TrainSet,
    config: TrainConfig,
    *,
    model: nn.Module | Callable[[], nn.Module] | None = None,
    parent_id: str | None = None,
    training_id: str | None = None,
    record: bool = True,
    prepare: Prepare | None = None,
    policy: str = "",
    policy_params: Mapping[str, Any] | None = None,
    trigger: Mapping[str, Any] | None = None,
    cutoff: tuple[int, int] | None = None,
    update_decision: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    loader_options: LoaderOptions | None = None,
    save_every: int = 0,
) -> TrainResult:
    """Train on ``train_set`` in this rank of the current process group (see the module docstring).

    Call it in every rank with the same arguments. ``config.batch_size`` is the global batch
    and must be a multiple of the world size. Returns the same :class:`TrainResult` on every
    rank (``record`` is the catalog record rank 0 wrote, when ``record=True``). With ``record``,
    arguments the catalog would refuse (an id already used, an invalid ``parent_id`` or
    ``cutoff``, values that are not JSON) are refused in every rank before training; if rank 0
    still fails to record, every rank raises.

    ``save_every`` (with a ``training_id`` of your own) saves the training's progress every
    ``save_every`` global steps, and the same call in as many ranks goes on from a progress an
    interrupted run saved (see :mod:`training.progress`); one saved with another world size is
    refused (``InvalidArgumentError`` naming ``world_size``).
    """
    rank, world = _group()
    if not isinstance(config, TrainConfig):
        raise InvalidArgumentError("config", type(config).__name__, "a TrainConfig")
    check_save_every(save_every, training_id, False)
    metrics = check_metrics(metrics)
    if config.batch_size % world:
        raise InvalidArgumentError(
            "config.batch_size", config.batch_size, f"a global batch size divisible by the world size {world}"
        )
    catalog = Catalog(store)
    if config.mode == "finetune" and parent_id is None:
        raise InvalidArgumentError("parent_id", parent_id, "the training to fine-tune (mode='finetune')")
    ids: list[Any] = [training_id if training_id is not None else catalog.new_id(), False]
    meta: dict[str, Any] = dict(policy=policy, policy_params=policy_params, trigger=trigger, cutoff=cutoff,
                                parent_id=parent_id, update_decision=update_decision)
    if record:  # what the catalog would refuse, in every rank alike, before training and writing
        catalog.check_record(str(ids[0]), train_set, seed=config.seed, config=config.to_json(), metrics=metrics,
                             **meta)
    if record and rank == 0:
        try:
            catalog.check_unused(str(ids[0]))
        except InvalidArgumentError:
            ids[1] = True
    dist.broadcast_object_list(ids, src=0)  # every rank names the training as rank 0 does
    tid = str(ids[0])
    if ids[1]:  # rank 0 found the id in the catalog: every rank refuses it
        raise InvalidArgumentError("training_id", tid, "a training id not used before")
    progress = open_progress(catalog, tid, save_every, fingerprint(config.to_json(), train_set, parent_id)) \
        if save_every else None
    try:
        dev = torch.device(config.device)
        with deterministic(config.deterministic):
            net, parent_state = start_model(catalog, config, model, parent_id)
            dl = loader(
                store,
                train_set,
                columns=config.columns,
                batch_size=config.batch_size // world,
                shuffle=config.shuffle,
                seed=config.seed,
                device=config.device,
                rank=rank,
                world_size=world,
                options=loader_options,
            )
            scale_inputs(net, dl, config, parent_state, prepare)  # every rank the same, before wrapping
            net.to(dev).train()
            ddp = DistributedDataParallel(
                net, device_ids=[dev.index] if dev.type == "cuda" and dev.index is not None else None)
            cost, losses = _fit_rank(ddp, dl, train_set, config, prepare, progress)
        rec: TrainingRecord | None = None
        failed: BaseException | None = None
        status: list[Any] = [None]
        resumed = {"resumed_from": list(progress.start)} if progress is not None and progress.restored else {}
        if rank == 0 and (record or progress is not None):
            try:
                recorded = {"epoch_losses": list(losses), "world_size": world, "backend": str(dist.get_backend()),
                            **resumed, **dict(metrics or {})}
                if record:
                    rec = save_and_record(catalog, tid, net, train_set, config, None, progress, cost=cost,
                                           metrics=recorded, **meta)
                if progress is not None:
                    progress.finish()
            except Exception as exc:
                failed = exc
                if isinstance(exc, ErasedKeysError):  # as train(), and before the other ranks raise
                    failed = refuse_erased(progress, exc)  # (the launcher then stops rank 0)
                # typed errors go to the other ranks as they are: every rank raises the caller's one
                status[0] = failed if isinstance(failed, ModynStoreError) else f"{type(failed).__name__}: {failed}"
        dist.broadcast_object_list(status, src=0)  # the other ranks learn whether rank 0 recorded it
        if failed is not None:
            raise failed
        if isinstance(status[0], ModynStoreError):
            raise status[0]
        if status[0] is not None:
            raise RuntimeError(f"rank 0 did not record training {tid!r} (or remove its progress): {status[0]}")
        dist.barrier()  # the checkpoint and the record exist before any rank returns
        if record and rank != 0:
            rec = catalog.get(tid)
        return TrainResult(tid, net, cost, losses, rec)
    except ErasedKeysError as exc:  # (also one that rank 0's loader raised in an epoch, see _ddp_progress)
        raise refuse_erased(progress if rank == 0 else None, exc)
    finally:
        if progress is not None:
            progress.close()  # rank 0's lock of the training (see training._training_lock)


# -- local launcher (spawn: training._spawn) -------------------------------------------
def _spawned_training(
    uri: str,
    storage_options: dict[str, Any] | None,
    train_set: TrainSet,
    config_json: dict[str, Any],
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    store = open_store(uri, storage_options)
    result = train_distributed(store, train_set, TrainConfig.from_json(config_json), **kwargs)
    return {
        "training_id": result.training_id,
        "state": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
    }


def spawn_training(
    store: Any,
    train_set: TrainSet,
    config: TrainConfig,
    *,
    world_size: int,
    storage_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> TrainingRecord | dict[str, torch.Tensor]:
    """Train with ``world_size`` local CPU ranks (gloo); returns rank 0's record.

    ``store`` is a :class:`~modyn_store.Store` or its URI; ``kwargs`` go to
    :func:`train_distributed` (with ``record=False`` the trained state dict is returned). With
    ``save_every``, a progress saved with another world size is refused here, before spawning.
    """
    if isinstance(store, str):
        uri, opts = store, storage_options
    else:
        uri, opts = store_address(store)
    if config.device != "cpu":
        raise InvalidArgumentError("config.device", config.device, "'cpu' (spawn runs gloo ranks on CPU)")
    if isinstance(world_size, int) and world_size > 0 and config.batch_size % world_size:
        raise InvalidArgumentError(
            "config.batch_size", config.batch_size, f"a global batch size divisible by the world size {world_size}"
        )
    kwargs = _check_progress(lambda: open_store(uri, opts), kwargs, world_size)
    out = spawn(_spawned_training, world_size, uri, opts, train_set, config.to_json(), dict(kwargs))
    if not kwargs.get("record", True):
        return dict(out["state"])
    return Catalog(open_store(uri, opts)).get(str(out["training_id"]))


def _check_progress(store: Callable[[], Any], kwargs: Mapping[str, Any], world_size: Any) -> dict[str, Any]:
    """A launcher's checks before it starts ranks (the ranks check again): ``metrics`` (the
    returned arguments hold them as a dict), and for ``save_every`` a ``training_id`` of one's
    own and a saved progress (in ``store()``) of as many ranks."""
    kwargs = dict(kwargs)
    if "metrics" in kwargs:
        kwargs["metrics"] = check_metrics(kwargs["metrics"])
    tid, every = kwargs.get("training_id"), kwargs.get("save_every", 0)
    check_save_every(every, tid, False)
    if every and isinstance(world_size, int):
        saved = saved_progress(store(), str(tid))
        if saved is not None:
            check_world_size(str(tid), saved.get("world_size"), world_size)
    return kwargs


# -- Ray Train ---------------------------------------------------------------------------
def _ray_loop(cfg: dict[str, Any]) -> None:
    store = open_store(cfg["uri"], cfg["storage_options"])
    train_distributed(store, cfg["train_set"], TrainConfig.from_json(cfg["config"]), **cfg["kwargs"])


def train_on_ray(
    store: Any,
    train_set: TrainSet,
    config: TrainConfig,
    *,
    num_workers: int,
    use_gpu: bool = False,
    storage_path: str | None = None,
    **kwargs: Any,
) -> TrainingRecord:
    """Train with Ray Train's ``TorchTrainer`` on the connected Ray cluster (``ray.init`` first).

    Each Ray Train worker is one DDP rank (gloo on CPU, nccl with ``use_gpu``) that opens the
    store itself, so the store must be reachable from every node (object storage, or a shared
    folder). Needs the ``ray`` extra. Returns the record rank 0 wrote. ``kwargs`` go to
    :func:`train_distributed` (``save_every`` with a ``training_id``: the same call goes on from
    the progress of an interrupted one with as many workers).
    """
    try:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer
    except ImportError as exc:  # pragma: no cover - exercised without ray installed
        raise ImportError("train_on_ray needs Ray Train: pip install 'modyn-store[ray]'") from exc
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise InvalidArgumentError("num_workers", num_workers, "an integer >= 1")
    uri, opts = store_address(store)
    kwargs = _check_progress(lambda: store, kwargs, num_workers)
    tid = kwargs.pop("training_id", None) or Catalog.new_id()
    trainer = TorchTrainer(
        _ray_loop,
        train_loop_config={
            "uri": uri,
            "storage_options": opts,
            "train_set": train_set,
            "config": config.to_json(),
            "kwargs": {**kwargs, "training_id": tid},
        },
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
        run_config=RunConfig(storage_path=storage_path or tempfile.mkdtemp(prefix="modyn-ray-train-")),
    )
    try:
        trainer.fit()
    except Exception as exc:
        typed = _worker_error(exc)
        if typed is None or typed is exc:
            raise
        raise typed from exc  # e.g. ErasedKeysError, as train() and spawn_training raise it
    return Catalog(store).get(tid)


def _worker_error(exc: BaseException) -> BaseException | None:
    """The store's typed error a Ray Train worker raised (the lowest failed rank's), out of Ray
    Train's ``TrainingFailedError`` (its ``worker_failures``, or its chain of causes), or None."""
    import ray

    failures = getattr(exc, "worker_failures", None)
    queue = [failures[r] for r in sorted(failures)] if isinstance(failures, dict) else []
    for err in [*queue, exc]:
        for _ in range(8):  # Ray wraps a task's error, and may wrap the wrapper
            if isinstance(err, ModynStoreError) and not isinstance(err, ray.exceptions.RayError):
                return err
            # a task's error is its ``cause``; Ray Train's wrapper of a worker's error (with its
            # traceback as text) keeps it as ``_base_exc`` in the releases that use one
            nxt = err.cause if isinstance(err, ray.exceptions.RayTaskError) else \
                getattr(err, "_base_exc", None) or err.__cause__
            if not isinstance(nxt, BaseException) or nxt is err:
                break
            err = nxt
    return None


# -- torchrun entry point ----------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """``torchrun ... -m training.distributed --store URI --train-set SET.npz --config CONFIG.json``."""
    p = argparse.ArgumentParser(prog="python -m training.distributed", description=main.__doc__)
    p.add_argument("--store", required=True, help="store folder or URI, reachable from every rank")
    p.add_argument("--storage-options", default=None, help="JSON dict of Lance-style storage options")
    p.add_argument("--train-set", required=True, help=".npz written by training.distributed.save_train_set")
    p.add_argument("--config", required=True, help="JSON file of a TrainConfig")
    p.add_argument("--training-id", default=None)
    p.add_argument("--save-every", type=int, default=0,
                   help="save the progress every N global steps; the same command goes on from it")
    p.add_argument("--backend", default=None, help="gloo (default on CPU) or nccl")
    a = p.parse_args(argv)
    options = json_options(a.storage_options)
    with open(a.config) as fh:
        config = TrainConfig.from_json(json.load(fh))
    dist.init_process_group(group_backend(a.backend, config.device))
    try:
        store = open_store(a.store, options)
        result = train_distributed(store, load_train_set(a.train_set), config, training_id=a.training_id,
                                   save_every=a.save_every)
        if dist.get_rank() == 0:
            print(json.dumps({"training_id": result.training_id, "samples": result.cost.samples}), flush=True)
        dist.barrier()  # every rank done with the group before any leaves it
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":  # pragma: no cover - run by torchrun
    _leave(main())
