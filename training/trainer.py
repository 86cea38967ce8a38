"""Train a model on a train set: from scratch or fine-tuning the previous model.

:func:`train` builds the model (from :mod:`training.models` by name, or a given module),
optionally loads its parent's checkpoint (``mode="finetune"``), serves the train set through
:func:`training.loader`, and optimizes a per-sample weighted loss
(``sum(weight * loss) / batch_rows``) with gradient accumulation and optional AMP. With
``record=True`` it stores the checkpoint and the training (train set, configuration, cost) in
the store's :class:`~modyn_store.core.trainings.Catalog` as one version.

Determinism: the model is initialized after ``torch.manual_seed(seed)``, the epoch order comes
from the loader's seed, and with ``deterministic=True`` torch's deterministic algorithms are
enforced during the run, so on CPU the same configuration gives the same weights bit for bit.

Example
-------
>>> import numpy as np, pyarrow as pa
>>> from modyn_store import Store, TrainSet
>>> from training.trainer import TrainConfig, train
>>> store = Store.open("memory://trainer-doc", create=True)
>>> x = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)
>>> _ = store.append(pa.table({"ts": np.arange(64), "label": (x[:, 0] > 0).astype(np.int64),
...                            "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 3)}))
>>> cfg = TrainConfig(model="logreg", model_params={"in_features": 3, "n_classes": 2},
...                   inputs={"features": "x"}, epochs=2, batch_size=16, lr=0.5)
>>> result = train(store, TrainSet.uniform(np.arange(64), version=1), cfg)
>>> result.cost.samples, result.record.policy
(128, '')
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import torch
from torch import nn

from modyn_store.core.errors import ConflictError, InvalidArgumentError
from modyn_store.core.trainings import Catalog, Cost, TrainingRecord
from modyn_store.core.trainset import TrainSet
from training.batch import Batch
from training.determinism import deterministic, state_equal
from training.downsampling import BatchThenSample, union_of_epochs
from training.errors import ErasedKeysError, check_loss, check_rows
from training.loading import LoaderOptions, loader
from training.models import load_weights
from training.progress import Progress, check_save_every, discard_progress, fingerprint
from training.recording import refuse_erased, save_and_record
from training.scaling import fit_input_scale
from training.targets import TargetCheck
from training.train_config import TrainConfig, check_metrics

__all__ = ["LABEL_HINT", "TrainConfig", "TrainResult", "check_label_column", "deterministic", "fit", "loss_per_sample",
           "model_inputs", "state_equal", "train"]

Prepare = Callable[[Batch], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class TrainResult:
    """A finished training: the model, its catalog record (when recorded), cost and mean epoch losses.

    ``train_set`` is what it trained on (with rescoring: the union of the epochs' sets, one plan per epoch).
    """

    training_id: str
    model: nn.Module
    cost: Cost
    epoch_losses: tuple[float, ...]
    record: TrainingRecord | None = None
    train_set: TrainSet | None = None


def check_inputs(inputs: Any) -> None:
    """``inputs`` must be a non-empty ``{forward argument: column}`` mapping of strings (a list
    or a column name alone would fail later as an ``AttributeError``)."""
    if (not isinstance(inputs, Mapping) or not inputs
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in inputs.items())):
        raise InvalidArgumentError("inputs", inputs, "a non-empty mapping of forward argument -> column name")


def model_inputs(batch: Batch, inputs: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """Forward arguments from a batch: ``{arg: batch[column]}`` (float64 features become float32)."""
    out = {}
    for arg, col in inputs.items():
        v = batch[col]
        if not isinstance(v, torch.Tensor):
            raise InvalidArgumentError(
                f"inputs[{arg!r}]", col, "a fixed-size column (pass prepare= to turn bytes or text into tensors)"
            )
        out[arg] = v.float() if v.dtype == torch.float64 else v
    return out


def loss_per_sample(kind: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The unreduced loss of each row."""
    if kind == "cross_entropy":
        return nn.functional.cross_entropy(logits.float(), target.long(), reduction="none")
    if kind == "bce":
        z = logits[:, 1] - logits[:, 0] if logits.ndim == 2 and logits.shape[1] == 2 else logits.reshape(-1)
        return nn.functional.binary_cross_entropy_with_logits(z.float(), target.float().reshape(-1), reduction="none")
    pred = logits.float().reshape(target.shape) if logits.numel() == target.numel() else logits.float()
    return ((pred - target.float()) ** 2).reshape(pred.shape[0], -1).mean(dim=1)


def _build_model(config: TrainConfig, model: nn.Module | Callable[[], nn.Module] | None) -> nn.Module:
    if model is not None:
        built = model if isinstance(model, nn.Module) else model() if callable(model) else None
        if not isinstance(built, nn.Module):
            raise InvalidArgumentError("model", type(model).__name__, "a torch.nn.Module, a factory of one, or None")
        return built
    if not config.model:
        raise InvalidArgumentError("config.model", config.model, "a model name of training.models.MODELS")
    from training.models import build_model

    return build_model(config.model, **config.model_params)


def _optimizer(config: TrainConfig, params: Any) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


#: how to store string labels as class codes (named in the errors below)
LABEL_HINT = ("for string labels ingest with `modyn-store append STORE FILE --label COLUMN` or a pipeline "
              "source with label: COLUMN (both store codes and a label map)")


def check_label_column(store: Any, label: str, *, name: str = "label", floats: bool = False) -> None:
    """The store's column ``label`` must hold integer class codes (``floats``: or float targets,
    as BCE takes): a readable error naming ``name`` instead of a failure deep in torch. Unknown
    columns are left to the loader, which names the columns there are."""
    schema = getattr(store, "schema", None)
    if schema is None or label not in schema.names:
        return
    t = schema.field(label).type
    if not (pa.types.is_integer(t) or pa.types.is_boolean(t) or (floats and pa.types.is_floating(t))):
        raise InvalidArgumentError(name, f"{label!r} ({t})", f"a column of integer class codes 0 .. n-1; {LABEL_HINT}")


def _check_label(store: Any, config: TrainConfig) -> None:
    if config.loss != "mse":
        check_label_column(store, config.label, name="config.label", floats=config.loss == "bce")


def fit(
    model: nn.Module,
    batches: Any,
    config: TrainConfig,
    *,
    prepare: Prepare | None = None,
    downsample: BatchThenSample | None = None,
    on_epoch: Callable[[int, nn.Module], Any] | None = None,
    progress: Progress | None = None,
) -> tuple[Cost, tuple[float, ...]]:
    """The optimization loop over an iterable of batches (one pass per epoch); returns cost and losses.

    ``downsample`` trains each batch only on the rows it chooses (batch then sample, see
    :mod:`training.downsampling`); ``on_epoch(epoch, model)``, called before every epoch after
    the first, may return new batches to serve from then on. ``progress`` (a
    :class:`~training.progress.Progress`; ``batches`` a :class:`~training.epochs.Loader`) goes
    on from its saved state and saves the loop's state every ``progress.every`` batches.
    """
    dev = torch.device(config.device)
    model.to(dev).train()
    opt = _optimizer(config, model.parameters())
    cuda = dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if (config.amp and cuda) else None
    amp_dtype = torch.float16 if cuda else torch.bfloat16
    loop = progress.restore(model, opt, scaler) if progress is not None else {}
    samples = int(loop.get("samples", 0))
    device_s = float(loop.get("device_s", 0.0))
    losses: list[float] = list(loop.get("losses", []))
    t0 = time.perf_counter() - float(loop.get("wall_s", 0.0))
    events: list[tuple[Any, Any]] = []
    check = TargetCheck(config.loss, config.label)
    start_epoch, start_batch = progress.start if progress is not None else (0, 0)
    if progress is not None:
        batches.set_epoch(start_epoch, start_batch)
    for epoch in range(start_epoch, config.epochs):
        if epoch and on_epoch is not None:
            # None keeps the batches; a loader of an empty set (falsy: no batches) replaces them
            replaced = on_epoch(epoch, model)
            batches = batches if replaced is None else replaced
        # the epoch's loss is summed on the device (float64: the same sums as Python floats) and
        # read once per epoch: reading it per step would wait for every step's kernels
        total, rows, step_in = torch.zeros((), dtype=torch.float64, device=dev), 0, 0
        skipped = start_batch if epoch == start_epoch else 0
        if skipped:  # the interrupted epoch: its loss and rows so far
            total += float(loop["total"])
            rows = int(loop["rows"])
        first, group = 0, 0  # rows of the group's first batch, rows of the group so far
        opt.zero_grad(set_to_none=True)
        for step, batch in enumerate(batches, start=skipped):
            c0 = time.perf_counter()
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
            args = prepare(batch) if prepare is not None else model_inputs(batch, config.inputs)
            args = {k: v.to(dev, non_blocking=True) for k, v in args.items()}
            target = batch[config.label].to(dev, non_blocking=True)
            weight = batch["weight"].to(dev, non_blocking=True)
            keys = batch["key"]
            if downsample is not None:
                pos, importance = downsample.choose(model, args, batch, config.label, epoch=epoch, step=step)
                if pos.numel() == 0:
                    continue
                args = {k: v[pos] for k, v in args.items()}
                target, weight = target[pos], weight[pos] * importance.to(weight.dtype)
                keys = None
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=config.amp):
                logits = model(**args)
            target = check(logits, target, keys)  # class codes the loss can take, not skipped
            per = loss_per_sample(config.loss, logits, target)
            n = int(per.shape[0])
            part = (per * weight).sum()
            loss = part / n
            if step_in == 0:
                first, group = n, 0
            group += n
            # each batch of a group is scaled by 1 / (first * grad_accum) (for equal batches: its
            # mean loss / grad_accum); _step rescales a group of another size, e.g. an epoch's
            # last, to sum(weight * loss) / (the group's rows): one batch of all its rows
            scaled = (loss if n == first else part / first) / config.grad_accum
            if scaler is not None:
                scaler.scale(scaled).backward()
            else:
                scaled.backward()
            step_in += 1
            if step_in == config.grad_accum:
                _step(opt, scaler, first * config.grad_accum / group if group else 1.0)
                step_in = 0
            samples += n
            rows += n
            total += loss.detach().double() * n
            if cuda:
                end.record()
                events.append((start, end))
            else:
                device_s += time.perf_counter() - c0
            if progress is not None and progress.due() and step_in == 0:
                pending = check.pending()
                if pending:
                    check.finish(epoch, pending)
                if cuda:
                    torch.cuda.synchronize(dev)
                    device_s += sum(s.elapsed_time(e) for s, e in events) / 1000.0
                    events.clear()
                progress.save(epoch, step + 1, model, opt, scaler, {
                    "total": float(total), "rows": rows, "samples": samples, "device_s": device_s,
                    "wall_s": time.perf_counter() - t0, "losses": losses})
        if step_in:
            _step(opt, scaler, first * config.grad_accum / group if group else 1.0)
        check.finish(epoch)
        losses.append(check_loss(epoch, float(total) / max(rows, 1)))
    if cuda:
        torch.cuda.synchronize(dev)
        device_s += sum(s.elapsed_time(e) for s, e in events) / 1000.0
    return Cost(samples, time.perf_counter() - t0, device_s), tuple(losses)


def scale_inputs(net: nn.Module, dl: Any, config: TrainConfig, parent_state: Any, prepare: Prepare | None) -> None:
    """Fit ``net``'s input scale to the rows of loader ``dl`` when ``config.standardize`` asks
    for it: not for a fine-tune (``parent_state``: it keeps its parent's scale), nor with
    ``prepare`` (the model sees what it returns, not the columns the statistics come from)."""
    if config.standardize and parent_state is None and prepare is None:
        fit_input_scale(net, dl.fixed_rows, config.inputs)


def _step(opt: torch.optim.Optimizer, scaler: Any, factor: float = 1.0) -> None:
    """One optimizer step on the accumulated gradients, multiplied by ``factor`` first."""
    if factor != 1.0:
        with torch.no_grad():
            for g in opt.param_groups:
                for p in g["params"]:
                    if p.grad is not None:
                        p.grad.mul_(factor)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    opt.zero_grad(set_to_none=True)


def start_model(catalog: Any, config: TrainConfig, model: nn.Module | Callable[[], nn.Module] | None,
                parent_id: str | None) -> tuple[nn.Module, dict[str, Any] | None]:
    """The model a training starts from (seeded; call it inside :func:`deterministic`) and the state of its parent."""
    parent_state = catalog.load_checkpoint(parent_id) if (config.mode == "finetune" and parent_id) else None
    torch.manual_seed(config.seed)
    net = _build_model(config, model)
    if parent_state is not None:
        load_weights(net, parent_state, name="parent_id", training_id=str(parent_id))
    return net, parent_state


def train(
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
    downsample: Any = None,
    reselect: Callable[[nn.Module], TrainSet] | None = None,
    reselect_every: int = 0,
    save_every: int = 0,
) -> TrainResult:
    """Train a model on ``train_set`` and (with ``record``) store checkpoint and training.

    Parameters
    ----------
    store:
        The :class:`modyn_store.Store` holding the samples (and the catalog).
    train_set:
        What to train on (keys, weights, version, optional per-epoch plans).
    config:
        A :class:`TrainConfig`.
    model:
        A module, or a zero-argument factory called after seeding (reproducible), to train
        instead of building ``config.model``; reproduction then needs the same factory.
    parent_id:
        The previous training; with ``mode="finetune"`` its checkpoint initializes the model.
    training_id:
        Name of the new training (default: :meth:`Catalog.new_id`).
    prepare:
        ``prepare(batch) -> forward kwargs`` for inputs that are not plain tensors (e.g. text).
    policy, policy_params, trigger, cutoff, update_decision, metrics:
        Facts stored with the training (``metrics`` beside the training's own, which it may not
        name: :data:`training.train_config.TRAINER_METRICS`).
    downsample:
        Batch then sample: an object with ``score_batch``/``choose_in_batch`` (e.g. a score-based
        strategy with ``mode="batch_then_sample"``) or a :class:`~training.downsampling.BatchThenSample`;
        each batch trains only on the rows it chooses, weighted by their importance weights.
    reselect, reselect_every:
        Sample then batch with rescoring: before epochs ``p, 2p, ...`` (``p = reselect_every``)
        ``reselect(model)`` returns the train set of the next epochs; the recorded train set holds
        every epoch's keys as epoch plans.
    save_every:
        Save the training's progress every ``save_every`` batches (0: never) under
        ``training_id`` (required), and go on from a progress saved by an earlier, interrupted
        call with the same arguments (see :mod:`training.progress`). Not with ``downsample`` or
        ``reselect``.

    Raises
    ------
    ErasedKeysError
        Keys of the train set are no longer live (also erased while it trained); a progress
        saved with ``save_every`` is removed.
    InvalidArgumentError
        Naming ``train_set`` when it holds no row, or an epoch plan it serves is empty, before
        anything is built or written.
        With ``record``, also every argument the catalog would not record (an id already used,
        an invalid ``parent_id`` or ``cutoff``, values that are not JSON), before training.
    """
    started = time.perf_counter()
    if not isinstance(config, TrainConfig):
        raise InvalidArgumentError("config", type(config).__name__, "a TrainConfig")
    if isinstance(reselect_every, bool) or not isinstance(reselect_every, int) or reselect_every < 0:
        raise InvalidArgumentError("reselect_every", reselect_every, "an integer >= 0 (0: never)")
    if reselect_every and reselect is None:
        raise InvalidArgumentError("reselect", None, "a callable model -> TrainSet when reselect_every > 0")
    plans_hint = ("a train set without per-epoch plans when it is reselected "
                  "(the recorded union keeps one plan per epoch)")
    if reselect_every and reselect_every < config.epochs and isinstance(train_set, TrainSet) and \
            train_set.per_epoch is not None:
        raise InvalidArgumentError("train_set", "per-epoch plans", plans_hint)
    check_save_every(save_every, training_id, downsample is not None or reselect_every > 0)
    check_rows(train_set, min(config.epochs, reselect_every) if reselect_every else config.epochs)
    metrics = check_metrics(metrics)  # pairs read once: the dict recorded
    ds = None
    if downsample is not None:
        ds = downsample if isinstance(downsample, BatchThenSample) else BatchThenSample(downsample, seed=config.seed)
    _check_label(store, config)
    catalog = Catalog(store)
    tid = training_id if training_id is not None else catalog.new_id()
    if config.mode == "finetune" and parent_id is None:
        raise InvalidArgumentError("parent_id", parent_id, "the training to fine-tune (mode='finetune')")
    meta: dict[str, Any] = dict(policy=policy, policy_params=policy_params, trigger=trigger, cutoff=cutoff,
                                parent_id=parent_id, update_decision=update_decision)
    if record:  # everything the catalog would refuse, before training and before any file is written
        catalog.check_record(tid, train_set, seed=config.seed, config=config.to_json(), metrics=metrics, **meta)
        try:
            catalog.check_unused(tid)
        except InvalidArgumentError:
            if save_every:  # a recorded training's progress (its removal was cut short) is of no use
                try:
                    discard_progress(store, tid)
                except ConflictError:  # another process trains the id: it removes its own progress
                    pass
            raise
    # its lock is held until this call returns (see training._training_lock)
    progress = Progress.open(catalog, tid, save_every, fingerprint(config.to_json(), train_set, parent_id)) \
        if save_every else None
    try:
        return _train_opened(store, catalog, tid, train_set, config, progress, started, model=model, prepare=prepare,
                             record=record, meta=meta, metrics=metrics, loader_options=loader_options, ds=ds,
                             reselect=reselect, reselect_every=reselect_every, plans_hint=plans_hint)
    except ErasedKeysError as exc:
        raise refuse_erased(progress, exc)  # its saved state learned from rows now gone: it may not stay
    finally:
        if progress is not None:
            progress.close()


def _train_opened(store: Any, catalog: Catalog, tid: str, train_set: TrainSet, config: TrainConfig,
                  progress: Progress | None, started: float, *, model: nn.Module | Callable[[], nn.Module] | None,
                  prepare: Prepare | None, record: bool, meta: dict[str, Any], metrics: Mapping[str, Any] | None,
                  loader_options: LoaderOptions | None, ds: BatchThenSample | None,
                  reselect: Callable[[nn.Module], TrainSet] | None, reselect_every: int,
                  plans_hint: str) -> TrainResult:
    """:func:`train` once its arguments are checked and its progress (if any) is opened."""
    with deterministic(config.deterministic):
        net, parent_state = start_model(catalog, config, model, meta["parent_id"])
        dl = loader(
            store,
            train_set,
            columns=config.columns,
            batch_size=config.batch_size,
            shuffle=config.shuffle,
            seed=config.seed,
            device=config.device,
            options=loader_options,
        )
        scale_inputs(net, dl, config, parent_state, prepare)
        epoch_sets = [train_set] * config.epochs

        def on_epoch(epoch: int, m: nn.Module) -> Any:
            if reselect is None or not reselect_every or epoch % reselect_every:
                return None
            new = reselect(m)
            if not isinstance(new, TrainSet):
                raise InvalidArgumentError("reselect", type(new).__name__, "a callable returning a TrainSet")
            if new.per_epoch is not None:
                raise InvalidArgumentError("reselect", "a train set with per-epoch plans", plans_hint)
            if new.version != train_set.version:
                # the training records one train set of one version (every epoch's keys as plans):
                # a set of another version could not be reproduced from it
                raise InvalidArgumentError(
                    "reselect", f"a train set of version {new.version}",
                    f"train sets of the training's version {train_set.version}")
            epoch_sets[epoch:] = [new] * (config.epochs - epoch)
            nl = loader(store, new, columns=config.columns, batch_size=config.batch_size, shuffle=config.shuffle,
                        seed=config.seed, device=config.device, options=loader_options)
            nl.set_epoch(epoch)
            return nl

        cost, losses = fit(net, dl, config, prepare=prepare, downsample=ds, on_epoch=on_epoch, progress=progress)
    extra: dict[str, Any] = {}
    if progress is not None and progress.restored is not None:
        extra["resumed_from"] = list(progress.start)
    if ds is not None:
        extra["batch_then_sample"] = {"scored": ds.scored, "trained": ds.trained}
    if any(s is not train_set for s in epoch_sets):
        train_set = union_of_epochs(epoch_sets, config.epochs)
        extra["reselections"] = len({id(s) for s in epoch_sets}) - 1
    rec = None
    if record:
        rec = save_and_record(catalog, tid, net, train_set, config, started, progress, cost=cost,
                               metrics={"epoch_losses": list(losses), **extra, **dict(metrics or {})}, **meta)
    if progress is not None:
        progress.finish()
    return TrainResult(tid, net, cost, losses, rec, train_set)
