"""The configuration of one training (:class:`TrainConfig`): model, inputs, optimizer, epochs,
batch size, seed and device, checked when it is built and stored with the training's record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from modyn_store.core._plainjson import plain_json
from modyn_store.core._validate import check_bool, check_float, check_int
from modyn_store.core.errors import InvalidArgumentError

__all__ = ["RECORDED_BEFORE", "TRAINER_METRICS", "TrainConfig", "check_metrics"]

#: the value of each field a recorded configuration lacks: it was written before the field
#: existed, and the training it describes ran without it (models then had no input scale)
RECORDED_BEFORE: dict[str, Any] = {"standardize": False}

#: the metrics a training records of itself: what it measured, and what :func:`training.reproduce`
#: reads to retrain it as it ran (one process or ``world_size`` ranks, rows chosen per batch,
#: train sets chosen again during training); a caller's metrics may not name them
TRAINER_METRICS = ("epoch_losses", "train_wall_s", "resumed_from", "batch_then_sample", "reselections",
                   "world_size", "backend")

_OPTIMIZERS = ("sgd", "adam", "adamw")


def check_metrics(metrics: Any) -> dict[Any, Any] | None:
    """``metrics`` as the dict a training records (``None`` stays ``None``; pairs are read once,
    so use what this returns); refused (``InvalidArgumentError`` naming ``metrics``) when not a
    mapping or when naming a key of :data:`TRAINER_METRICS`: recorded under the training's own
    facts, they would replace them."""
    if metrics is None:
        return None
    try:
        out = dict(metrics)  # what the trainer records: dict(metrics), pairs included
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError("metrics", type(metrics).__name__, "a mapping of name -> value") from exc
    taken = sorted(str(k) for k in out if k in TRAINER_METRICS)
    if taken:
        raise InvalidArgumentError("metrics", taken, f"keys other than those a training records of itself "
                                                     f"{list(TRAINER_METRICS)}")
    return out


_LOSSES = ("cross_entropy", "bce", "mse")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training needs besides data; stored with the training (JSON) for reproduction.

    Parameters
    ----------
    model, model_params:
        A model name of :data:`training.models.MODELS` and its parameters (``""`` when the model
        is passed to :func:`train` directly).
    inputs:
        Model ``forward`` argument -> store column (e.g. ``{"features": "x"}``).
    label:
        The target column.
    mode:
        ``"scratch"`` or ``"finetune"`` (start from the parent training's checkpoint).
    epochs, batch_size, shuffle, seed:
        Passes over the train set, rows per step, seeded per-epoch shuffle.
    optimizer, lr, momentum, weight_decay:
        ``"sgd"``, ``"adam"`` or ``"adamw"`` and its settings: finite numbers, ``lr > 0``,
        ``momentum >= 0`` and ``weight_decay >= 0``. ``momentum`` is SGD's; Adam and AdamW have
        none (their moments are fixed by torch's defaults), so a non-zero ``momentum`` with them is
        refused rather than ignored.
    loss:
        ``"cross_entropy"`` (integer labels), ``"bce"`` (one logit or two-class logits) or ``"mse"``.
    grad_accum:
        Batches whose gradients are summed per optimizer step; a step's gradient is that of one
        batch of all the rows of its batches (also for an epoch's last, shorter group).
    amp:
        Automatic mixed precision (float16 on CUDA with a gradient scaler, bfloat16 on CPU).
    device:
        ``"cpu"`` or a CUDA device.
    deterministic:
        Enforce torch's deterministic algorithms during the run (on CUDA this sets
        ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` for the process unless it is set).
    standardize:
        A model that standardizes its ``features`` (``logreg``, ``mlp``) trained from scratch gets
        the mean and standard deviation of each feature over the train set's rows
        (:mod:`training.scaling`); a fine-tuned one keeps its parent's, and one trained with a
        ``prepare=`` function (whose outputs the model sees) keeps the identity. ``False`` trains
        on the raw values. A record written before this field existed reads back as ``False``: it
        trained on raw values.

    ``shuffle``, ``amp``, ``deterministic`` and ``standardize`` must be bools. Every invalid field raises
    :class:`~modyn_store.core.errors.InvalidArgumentError` naming it when the config is built.
    """

    model: str = ""
    model_params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=lambda: {"features": "x"})
    label: str = "label"
    mode: Literal["scratch", "finetune"] = "scratch"
    epochs: int = 1
    batch_size: int = 256
    shuffle: bool = True
    seed: int = 0
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    loss: str = "cross_entropy"
    grad_accum: int = 1
    amp: bool = False
    device: str = "cpu"
    deterministic: bool = True
    standardize: bool = True

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in ("epochs", "batch_size", "grad_accum"):
            put(name, check_int(name, getattr(self, name), 1))
        put("seed", check_int("seed", self.seed, 0, (1 << 63) - 1))  # the catalog stores an int64
        for name in ("shuffle", "amp", "deterministic", "standardize"):
            check_bool(name, getattr(self, name))  # a string such as "no" is not False
        if self.mode not in ("scratch", "finetune"):
            raise InvalidArgumentError("mode", self.mode, "'scratch' or 'finetune'")
        if self.optimizer not in _OPTIMIZERS:
            raise InvalidArgumentError("optimizer", self.optimizer, f"one of {_OPTIMIZERS}")
        if self.loss not in _LOSSES:
            raise InvalidArgumentError("loss", self.loss, f"one of {_LOSSES}")
        put("lr", check_float("lr", self.lr, 0.0, lo_open=True))
        put("momentum", check_float("momentum", self.momentum, 0.0))
        put("weight_decay", check_float("weight_decay", self.weight_decay, 0.0))
        if self.momentum and self.optimizer != "sgd":
            raise InvalidArgumentError(
                "momentum", self.momentum, f"0 with optimizer {self.optimizer!r} (momentum is SGD's)"
            )
        if not isinstance(self.inputs, Mapping) or not self.inputs:
            raise InvalidArgumentError("inputs", self.inputs, "a non-empty mapping of forward argument -> column")
        object.__setattr__(self, "inputs", dict(self.inputs))
        object.__setattr__(self, "model_params", dict(self.model_params))

    @property
    def columns(self) -> list[str]:
        """The store columns a training reads."""
        cols = list(dict.fromkeys([*self.inputs.values(), self.label]))
        return cols

    def to_json(self) -> dict[str, Any]:
        """A JSON-serializable dict (see :meth:`from_json`); ``InvalidArgumentError`` naming
        ``config`` if a value (e.g. in ``model_params``) is not plain JSON."""
        plain_json("config", self.model_params)  # before asdict, which copies it recursively
        d = asdict(self)
        plain_json("config", d)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TrainConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InvalidArgumentError("config", unknown, f"fields of TrainConfig: {sorted(known)}")
        d = {**RECORDED_BEFORE, **d}
        if d.get("optimizer", "sgd") != "sgd" and d.get("momentum"):
            d["momentum"] = 0.0  # recorded when Adam ignored it: the training it describes had none
        return cls(**d)
