"""Checks of a pipeline definition that build (or look up) what the runner will build, at parse time.

:func:`~modyn_store.app.pipeline.config.parse_pipeline` calls these so that a definition the
runner would refuse fails while it is parsed, before a store folder is created or a row is read,
with a :class:`~modyn_store.app.pipeline.errors.PipelineConfigError` naming the key and its line:

- the model is built by the model factory (``training.models.build_model``) on torch's ``meta``
  device with its weight initialisation skipped, so its own parameter checks run without memory;
- each selection scope of the update policy (``scope``, ``retrain_scope``, ``finetune_scope``) is
  looked up and built in the selection registry, as the runner does when a training uses it;
- ``training.device`` goes through the training loader's check (``training.loading.check_device``).

(Policies themselves, time triggers' ``every`` and ``start`` included, are built at parse time by
:func:`~modyn_store.app.pipeline.config.build_policy`, so their own checks run there.)

Example
-------
>>> from modyn_store.app.pipeline.config import parse_pipeline
>>> parse_pipeline({"name": "p", "source": {"dataset": "elec2"}, "model": {"name": "mlp", "params": {"hidden": [-3]}},
...                 "trigger": {"name": "data_amount", "every": 5}})
Traceback (most recent call last):
...
modyn_store.app.pipeline.errors.PipelineConfigError: model.params.hidden[0]: invalid hidden[0]=-3: expected an integer >= 1
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from modyn_store.app.pipeline.checks import _Ctx
from modyn_store.core.errors import InvalidArgumentError, ModynStoreError

__all__ = ["check_device", "check_model", "check_save_every", "check_scopes", "check_training", "model_placeholders",
           "scope_keys"]


def model_placeholders(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with stand-ins for what the runner fills in from the data (``in_features`` ...).

    The stand-ins are valid values of the same kind as the runner's
    (:func:`~modyn_store.app.pipeline.source.model_params`); a parameter given in the file is kept.
    """
    out = dict(params)
    if name in ("mlp", "logreg"):
        out.setdefault("in_features", 1)
    if name == "dlrm":
        out.setdefault("n_dense", 13)
        out.setdefault("cardinalities", [1000] * 26)
    return out


def _no_init_mode() -> Any:
    """A torch function mode that skips ``torch.nn.init`` calls (weights stay uninitialised)."""
    from torch.overrides import TorchFunctionMode

    class _NoInit(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            if getattr(func, "__module__", "") == "torch.nn.init":
                return args[0] if args else kwargs.get("tensor")
            return func(*args, **kwargs)

    return _NoInit()


def _param_path(name: str, params: Mapping[str, Any]) -> tuple[Any, ...]:
    """``"hidden[0]"`` -> ``("hidden", 0)`` when ``hidden`` was given, else ``()``."""
    head, *idx = name.split("[")
    if head not in params:
        return ()
    try:
        return (head, *(int(i.rstrip("]")) for i in idx))
    except ValueError:
        return (head,)


def check_model(ctx: _Ctx, name: str, params: Mapping[str, Any], inputs: Mapping[str, str] | None = None) -> None:
    """Build model ``name`` with ``params`` as the runner will (``training.models.build_model``),
    and check that ``inputs`` (forward argument -> column) name its forward's arguments.

    It is built on torch's ``meta`` device without initialising weights: no memory is taken and
    nothing is computed, but the factory's checks (unknown or missing parameters, sizes < 1,
    a dropout outside [0, 1), ...) run. Errors name ``model.params.<param>`` or
    ``model.inputs.<argument>``.
    """
    import inspect

    import torch

    from training.models import build_model

    where: tuple[Any, ...] = ("model", "params")
    try:
        with torch.device("meta"), _no_init_mode():
            net = build_model(name, **model_placeholders(name, params))
    except InvalidArgumentError as exc:
        raise ctx.error(where + _param_path(str(exc.name), params), str(exc)) from exc
    except (TypeError, ValueError, OverflowError, RuntimeError, MemoryError) as exc:
        raise ctx.error(where, f"model {name!r} cannot be built with these parameters: "
                               f"{type(exc).__name__}: {exc}") from exc
    if inputs is None:
        return
    params_ = inspect.signature(net.forward).parameters.values()
    args = [p for p in params_ if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    anything = any(p.kind == p.VAR_KEYWORD for p in params_)
    for arg in inputs:
        if not anything and arg not in {p.name for p in args}:
            raise ctx.error(("model", "inputs", arg), f"model {name!r} takes no input {arg!r}; its "
                                                      f"forward takes {[p.name for p in args]}")
    for p in args:
        if p.default is p.empty and p.name not in inputs:
            raise ctx.error(("model", "inputs"), f"model {name!r} needs its input {p.name!r} mapped to "
                                                 f"a column (inputs: {dict(inputs)})")


def check_training(ctx: _Ctx, model: Any, training: Any) -> None:
    """The ``training`` settings as the runner builds them into a ``training.TrainConfig``, so a
    combination it refuses (``momentum`` with ``adam``, ...) fails before anything is written.
    Errors name ``training.<field>``."""
    from training.train_config import TrainConfig

    try:
        TrainConfig(model=model.name, inputs=dict(model.inputs), label="label", epochs=training.epochs,
                    batch_size=training.batch_size, seed=training.seed, optimizer=training.optimizer,
                    lr=training.lr, momentum=training.momentum, weight_decay=training.weight_decay,
                    device=training.device, standardize=training.standardize)
    except InvalidArgumentError as exc:
        raise ctx.error(("training", str(exc.name)), str(exc)) from exc


def check_save_every(ctx: _Ctx, training: Any, strategies: list[tuple[str, Any]]) -> None:
    """``training.save_every`` only with selections that choose before training (progress
    checkpoints do not hold the choices of batch-then-sample or of periodic reselection);
    ``strategies``: ``(where, strategy)`` pairs of the selection and the update policy's scopes."""
    if not training.save_every:
        return
    for where, strategy in strategies:
        mode = getattr(strategy, "mode", None)
        period = int(getattr(strategy, "period", 0) or 0)
        if mode == "batch_then_sample" or (mode == "sample_then_batch" and period):
            how = f"in mode {mode!r}" if mode == "batch_then_sample" else f"with period {period} (a new selection " \
                                                                            "every period epochs)"
            raise ctx.error(("training", "save_every"), f"0 with {where} {getattr(strategy, 'name', '')!r} {how}: "
                                                       "its choices during training are not saved with a training's "
                                                       "progress")


def scope_keys(cfg: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """The selection scopes an update policy's config names: ``(key, strategy name)`` pairs."""
    for key, value in cfg.items():
        if (key == "scope" or key.endswith("_scope")) and value is not None:
            yield key, value


def check_scopes(ctx: _Ctx, cfg: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Build every selection scope of the update policy ``cfg`` as the runner does
    (``policies.get("selection", name)()``); errors name ``update.<scope key>``.

    Returns the ``(key, strategy)`` pairs, for further checks of what they require.
    """
    import policies

    out = []
    for key, value in scope_keys(cfg):
        try:
            out.append((key, policies.get("selection", value)()))
        except (ModynStoreError, TypeError, ValueError) as exc:
            raise ctx.error(("update", key), f"{value!r} is not a selection strategy the runner can use as a "
                                             f"scope (it is built without parameters): {exc}") from exc
    return out


def check_device(ctx: _Ctx, device: str) -> None:
    """``training.device`` through the training loader's own check (``training.loading.check_device``)."""
    from training.loading import check_device as loader_check

    try:
        loader_check(device)
    except ModynStoreError as exc:
        raise ctx.error(("training", "device"), str(exc)) from exc
