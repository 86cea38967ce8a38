"""Pipeline definitions: frozen dataclasses, built from Python or validated from YAML.

A pipeline is a data source, a model, a trigger (when), a selection strategy (what), an update
policy (how), training settings, evaluation and limits. :func:`parse_pipeline` validates a plain
mapping (or a :class:`~modyn_store.app.pipeline.yamlsrc.YamlDoc`) completely before any work starts;
every error is a :class:`~modyn_store.app.pipeline.errors.PipelineConfigError` naming the key and,
for YAML, its line.

Example
-------
>>> from modyn_store.app.pipeline.config import parse_pipeline
>>> cfg = parse_pipeline({
...     "name": "elec2-finetune",
...     "source": {"dataset": "elec2", "chunk": "28d"},
...     "model": {"name": "mlp", "params": {"hidden": [16]}},
...     "trigger": {"name": "time", "every": "28d"},
...     "selection": {"name": "new_data"},
...     "update": {"name": "finetune"},
... })
>>> cfg.training.epochs, cfg.evaluation.metric
(1, 'accuracy')
>>> parse_pipeline({"name": "x", "source": {"dataset": "elec2"}, "model": {"name": "mlp"},
...                 "trigger": {"name": "data_amount", "every": 0}})
Traceback (most recent call last):
...
modyn_store.app.pipeline.errors.PipelineConfigError: trigger.every: invalid every=0: expected an integer in [1, inf]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from engine import score_registry as _score_registry
from modyn_store.core._validate import NAME_PATTERN
from modyn_store.core.errors import ModynStoreError
from modyn_store.app.pipeline.build_checks import (
    check_device,
    check_model,
    check_save_every,
    check_scopes,
    check_training,
)
from modyn_store.app.pipeline.checks import (
    INT64_MAX,
    _check_ints,
    _Ctx,
    _mapping,
    _names,
    _shown,
    _typed,
    ray_address_problem,
)
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.policy_parts import PARTS, with_model_columns
from modyn_store.app.pipeline.source_spec import ENCODINGS, SYNTHETIC, SourceConfig, check_trigger_units, parse_source
from modyn_store.app.pipeline.yamlsrc import YamlDoc

__all__ = [
    "MAX_EPOCHS",
    "MAX_THREADS",
    "SEED_MAX",
    "DeletionConfig",
    "EvaluationConfig",
    "LimitsConfig",
    "ModelConfig",
    "PipelineConfig",
    "RayConfig",
    "SourceConfig",
    "TrainingSettings",
    "build_policy",
    "parse_pipeline",
]

METRICS = ("accuracy", "f1", "roc_auc", "loss")
#: The largest seed (``training``, ``evaluation``, ``source`` and ``deletions``): the catalog stores an int64.
SEED_MAX = INT64_MAX
#: The most epochs of one training.
MAX_EPOCHS = 100_000
#: The most torch threads (``training.threads``); more exhausts the OpenMP runtime's memory.
MAX_THREADS = 1024
#: Scores the runner computes with a scoring pass of the current model (``engine.score_registry``).
SCORE_NAMES: tuple[str, ...] = tuple(
    n for n, spec in _score_registry.SCORES.items() if spec.computed_by == _score_registry.MODEL_PASS)


@dataclass(frozen=True)
class ModelConfig:
    """A model of :data:`training.models.MODELS`; ``in_features``/``n_classes`` default from the data."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, str] = field(default_factory=lambda: {"features": "features"})


@dataclass(frozen=True)
class TrainingSettings:
    """Optimizer and loop settings of every training (see :class:`training.trainer.TrainConfig`)."""

    epochs: int = 1
    batch_size: int = 256
    optimizer: str = "adam"
    lr: float = 0.001
    momentum: float = 0.0
    weight_decay: float = 0.0
    seed: int = 0
    threads: int = 1
    device: str = "cpu"
    standardize: bool = True
    save_every: int = 0


@dataclass(frozen=True)
class EvaluationConfig:
    """Every model on ``slices`` equal event-time windows of the final stream.

    ``sample`` (rows per slice) or ``fraction`` (share of each slice) evaluates a seeded sample
    of every slice (``seed``; ``stratify``: each label keeps its share) and reports the metric's
    95% confidence interval; neither: every row (the full matrix).
    """

    slices: int = 20
    metric: str = "accuracy"
    sample: int | None = None
    fraction: float | None = None
    stratify: bool = False
    seed: int = 0

    def eval_sample(self) -> Any:
        """The :class:`training.eval_sample.EvalSample` asked for (``None``: every row)."""
        if self.sample is None and self.fraction is None:
            return None
        from training.eval_sample import EvalSample

        return EvalSample(size=self.sample, fraction=self.fraction, stratify=self.stratify, seed=self.seed)


@dataclass(frozen=True)
class RayConfig:
    """Run scoring passes and selection on a Ray cluster (``ray:`` in YAML, ``--ray ADDRESS``).

    ``address`` is ``"auto"``, ``"ray://host:port"`` (Ray Client), ``"host:port"`` (a cluster's
    GCS address) or ``"local"`` (a cluster on this machine), checked while the definition is
    parsed (:func:`~modyn_store.app.pipeline.checks.ray_address_problem`); ``workers`` is the
    number of parallel scoring tasks. See ``docs/scale-out.md``.
    """

    address: str = "local"
    workers: int = 2


@dataclass(frozen=True)
class LimitsConfig:
    """``max_trainings`` (``1``: train once, never retrain) and ``min_train_rows`` (skip smaller sets)."""

    max_trainings: int | None = None
    min_train_rows: int = 1


@dataclass(frozen=True)
class DeletionConfig:
    """Deletion events in the replay: after every ``every``-th chunk, ``fraction`` of the live rows
    older than ``older_than`` chunks are erased (``mode="erase"``) or soft-deleted."""

    every: int = 4
    fraction: float = 0.05
    mode: str = "erase"
    older_than: int = 1
    seed: int = 0


@dataclass(frozen=True)
class PipelineConfig:
    """A complete pipeline (see the module docstring); policies are plain config dicts."""

    name: str
    source: SourceConfig
    model: ModelConfig
    trigger: Mapping[str, Any]
    selection: Mapping[str, Any] = field(default_factory=lambda: {"name": "new_data"})
    update: Mapping[str, Any] = field(default_factory=lambda: {"name": "finetune"})
    training: TrainingSettings = TrainingSettings()
    evaluation: EvaluationConfig = EvaluationConfig()
    limits: LimitsConfig = LimitsConfig()
    deletions: DeletionConfig | None = None
    ray: RayConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML/JSON-ready) that :func:`parse_pipeline` turns back into this config."""
        from dataclasses import replace

        data = self.source.data  # never deep-copied
        d = asdict(replace(self, source=replace(self.source, data=None)) if data is not None else self)
        if d["deletions"] is None:
            del d["deletions"]
        if d["ray"] is None:
            del d["ray"]
        src = d["source"]
        for k in ("format", "ts", "label", "features", "key", "store", "storage_options", "data", "dataset"):
            if src.get(k) is None:
                src.pop(k, None)
        if not src.get("drop_unlabeled"):
            src.pop("drop_unlabeled", None)
        if not d["training"]["save_every"]:  # the default: configs recorded before the option read the same
            del d["training"]["save_every"]
        if src.get("missing") == "zero":  # the default: configs recorded before the option read the same
            src.pop("missing", None)
        if data is not None:
            src["data"] = f"<in-memory {type(data).__name__} id={id(data)}>"
        return _plain(d)

    def describe(self) -> dict[str, str]:
        """Short descriptions of trigger, selection and update for tables and reports."""
        return {k: describe_policy(k, getattr(self, k)) for k in ("trigger", "selection", "update")}


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def describe_policy(kind: str, cfg: Mapping[str, Any]) -> str:
    """``name(param=value, ...)`` with the parameters that differ from their defaults."""
    import inspect

    import policies

    sig: Mapping[str, inspect.Parameter]
    try:
        sig = inspect.signature(policies.get(kind, cfg["name"]).__init__).parameters
    except ModynStoreError:
        sig = {}
    parts = []
    for k, v in cfg.items():
        if k == "name" or isinstance(v, Mapping):
            continue
        p = sig.get(k)
        default = p.default if p is not None else inspect.Parameter.empty
        if default is not inspect.Parameter.empty and (v == default or (isinstance(default, tuple) and list(default) == v)):
            continue
        parts.append(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}")
    return f"{cfg['name']}({', '.join(parts)})" if parts else str(cfg["name"])


# -- validation --------------------------------------------------------------------------------


def _model(ctx: _Ctx, raw: Any) -> ModelConfig:
    from training.models import MODELS

    p = ("model",)
    d = _mapping(ctx, p, raw, _names(ModelConfig))
    name = _typed(ctx, p + ("name",), d.get("name"), "str")
    if name not in MODELS:
        raise ctx.error(p + ("name",), f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    # only null stands for "no parameters": [] or false would otherwise pass as {}
    params = _mapping(ctx, p + ("params",), {} if d.get("params") is None else d["params"], None)
    inputs = _mapping(ctx, p + ("inputs",), d.get("inputs", {"features": "features"}), None)
    for k, v in inputs.items():
        _typed(ctx, p + ("inputs", k), v, "str")
    check_model(ctx, name, params, inputs)
    return ModelConfig(name, params, inputs)


def _simple(ctx: _Ctx, key: str, cls: type, raw: Any, spec: dict[str, dict[str, Any]]) -> Any:
    d = _mapping(ctx, (key,), raw if raw is not None else {}, _names(cls))
    defaults = cls()
    out = {}
    for name, kw in spec.items():
        out[name] = _typed(ctx, (key, name), d.get(name, getattr(defaults, name)), **kw)
    return cls(**out)


_TRAINING: dict[str, dict[str, Any]] = {
    "epochs": {"kind": "int", "lo": 1, "hi": MAX_EPOCHS}, "batch_size": {"kind": "int", "lo": 1},
    "optimizer": {"kind": "str", "choices": ("sgd", "adam", "adamw")},
    "lr": {"kind": "float", "lo": 1e-12}, "momentum": {"kind": "float", "lo": 0.0},
    "weight_decay": {"kind": "float", "lo": 0.0}, "seed": {"kind": "int", "lo": 0, "hi": SEED_MAX},
    "threads": {"kind": "int", "lo": 1, "hi": MAX_THREADS}, "device": {"kind": "str"},
    "standardize": {"kind": "bool"}, "save_every": {"kind": "int", "lo": 0},
}
_EVALUATION: dict[str, dict[str, Any]] = {
    "slices": {"kind": "int", "lo": 1, "hi": 10_000}, "metric": {"kind": "str", "choices": METRICS},
    "sample": {"kind": "int", "lo": 1, "optional": True}, "fraction": {"kind": "float", "lo": 1e-9, "hi": 1.0, "optional": True},
    "stratify": {"kind": "bool"}, "seed": {"kind": "int", "lo": 0, "hi": SEED_MAX},
}
_LIMITS: dict[str, dict[str, Any]] = {"max_trainings": {"kind": "int", "lo": 1, "optional": True}, "min_train_rows": {"kind": "int", "lo": 1}}
_DELETIONS: dict[str, dict[str, Any]] = {
    "every": {"kind": "int", "lo": 1}, "fraction": {"kind": "float", "lo": 0.0, "hi": 1.0},
    "mode": {"kind": "str", "choices": ("erase", "delete")}, "older_than": {"kind": "int", "lo": 0},
    "seed": {"kind": "int", "lo": 0, "hi": SEED_MAX},
}

def _evaluation(ctx: _Ctx, raw: Any) -> EvaluationConfig:
    ev: EvaluationConfig = _simple(ctx, "evaluation", EvaluationConfig, raw, _EVALUATION)
    if ev.sample is not None and ev.fraction is not None:
        raise ctx.error(("evaluation", "fraction"), "give sample (rows per slice) or fraction, not both")
    if ev.stratify and ev.sample is None and ev.fraction is None:
        raise ctx.error(("evaluation", "stratify"), "stratify needs sample or fraction")
    if ev.seed != 0 and ev.sample is None and ev.fraction is None:  # it would change nothing
        raise ctx.error(("evaluation", "seed"), f"seed={ev.seed} seeds the evaluation sample, and neither sample nor "
                                                "fraction is given (every row is evaluated): add one, or leave seed out")
    return ev

_RAY: dict[str, dict[str, Any]] = {"address": {"kind": "str"}, "workers": {"kind": "int", "lo": 1}}

_ARG_ALIASES = ("config.name", "name", "config", "kind")


def build_policy(kind: str, cfg: Any, *, key: str | None = None, doc: YamlDoc | None = None,
                 prefix: tuple[Any, ...] = ()) -> Any:
    """Build a policy through the registry; errors become :class:`PipelineConfigError` on ``key``.

    Example
    -------
    >>> build_policy("trigger", {"name": "data_amount", "every": 5})
    DataAmount(every=5)
    """
    return _build_policy(kind, cfg, _Ctx(doc, prefix), (key or kind,))


def _build_policy(kind: str, cfg: Any, ctx: _Ctx, path: tuple[Any, ...]) -> Any:
    import policies

    if not isinstance(cfg, Mapping) or "name" not in cfg:
        raise ctx.error(path, f"expected a mapping with a 'name' entry, got {_shown(cfg)}")
    # the owner reports a part's error under the part's own parameter name only ("every"),
    # which would point at the owner's key and line, or at an owner's parameter of that name
    for param, part_kind in PARTS.get((kind, cfg["name"]) if isinstance(cfg["name"], str) else ("", ""), ()):
        parts = cfg.get(param)
        items: list[tuple[int | None, Any]] = list(enumerate(parts)) if isinstance(parts, list) else [(None, parts)]
        for i, part in items:
            if isinstance(part, Mapping):
                _build_policy(part_kind, part, ctx, path + (param,) + (() if i is None else (i,)))
    try:
        return policies.from_config(kind, dict(cfg))
    except ModynStoreError as exc:
        sub = _param_of(exc, cfg, _parameters(kind, cfg.get("name")))
        raise ctx.error(path + ((sub,) if sub else ()), str(exc)) from exc
    except TypeError as exc:  # a parameter of a wrong type that the policy did not check
        raise ctx.error(path, f"{exc}") from exc
    except (OverflowError, ValueError) as exc:  # e.g. an integer too large for the policy's arrays
        big = [k for k, v in cfg.items() if isinstance(v, int) and not isinstance(v, bool) and abs(v) > INT64_MAX]
        raise ctx.error(path + ((big[0],) if big else ()), f"{type(exc).__name__}: {exc}") from exc


def _parameters(kind: str, name: Any) -> frozenset[str]:
    """The parameters of the policy ``name`` of ``kind`` (none if it is not registered)."""
    import policies

    try:
        return frozenset(policies.get(kind, name)._param_names())
    except (ModynStoreError, TypeError):
        return frozenset()


def _param_of(exc: Exception, cfg: Mapping[str, Any], known: frozenset[str] = frozenset()) -> str | None:
    """The config key an error of a policy's constructor is about: a given key, or a parameter
    left out (``known``: the policy's parameters)."""
    name = getattr(exc, "name", None)
    if not isinstance(name, str):
        return None
    if name in _ARG_ALIASES:
        return "name"
    last = name.split(".")[-1].split("[")[0]
    return last if last in cfg or last in known else None


def _check_requires(ctx: _Ctx, kind: str, pol: Any, key: str = "name") -> None:
    """Reject policies that need something the runner cannot provide (before any work).

    A score must be a name of the score registry (``engine.score_registry``) that the runner
    computes; an unknown name fails with the list of known ones. Errors name ``<kind>.<key>``.
    """
    from modyn_store.app.pipeline.selection import provided_score

    for req in sorted(getattr(pol, "requires", ())):
        if req in ("model", "embeddings") or (req.startswith("score:") and provided_score(req[6:], pol)):
            continue
        if req.startswith("score:") and req[6:] not in _score_registry.SCORES:
            raise ctx.error((kind, key), f"{pol.name!r} reads score {req[6:]!r}, which is not a known score; "
                                         f"known scores: {list(_score_registry.names())}")
        raise ctx.error((kind, key), f"{pol.name!r} needs {req!r}, which the pipeline runner does not provide "
                                     f"(scores it computes: {list(SCORE_NAMES)})")


def parse_pipeline(raw: Mapping[str, Any] | YamlDoc, *, prefix: tuple[Any, ...] = (),
                   doc: YamlDoc | None = None) -> PipelineConfig:
    """Validate a pipeline definition completely and return a :class:`PipelineConfig`.

    Parameters
    ----------
    raw:
        Plain data, or a :class:`YamlDoc` (errors then carry line numbers).
    prefix, doc:
        Where ``raw`` sits inside a larger document (grid files), for error keys and lines.

    Raises
    ------
    PipelineConfigError
        Naming the first bad key (unknown key or policy, wrong type, impossible value).
    """
    if isinstance(raw, YamlDoc):
        doc, data = raw, raw.data
    else:
        data = raw
    ctx = _Ctx(doc, prefix)
    d = _mapping(ctx, (), data, _names(PipelineConfig))
    _check_ints(ctx, (), d)
    for required in ("name", "source", "model", "trigger"):
        if required not in d:
            raise ctx.error((required,), "missing")
    name = _typed(ctx, ("name",), d["name"], "str")
    if not NAME_PATTERN.match(name) or ".." in name or len(name) > 80:
        raise ctx.error(("name",), f"expected a safe name (a letter, then letters, digits, '_.-'), got {name!r}")
    model = _model(ctx, d["model"])
    policies_, strategies = {}, []
    for kind, default in (("trigger", None), ("selection", {"name": "new_data"}), ("update", {"name": "finetune"})):
        cfg = d.get(kind, default)
        if kind == "trigger":
            cfg = with_model_columns(cfg, list(dict.fromkeys(model.inputs.values())))
        pol = build_policy(kind, cfg, doc=doc, prefix=prefix)
        _check_requires(ctx, kind, pol)
        policies_[kind] = pol.to_config()
        if kind == "selection":
            strategies.append(("selection", pol))
    for key, strategy in check_scopes(ctx, policies_["update"]):
        _check_requires(ctx, "update", strategy, key)
        strategies.append((f"update.{key}", strategy))
    deletions = d.get("deletions")
    ray = d.get("ray")
    source = parse_source(ctx, d["source"])
    if deletions is not None and source.kind == "store":  # it would erase the rows of the source store itself
        raise ctx.error(("deletions",), "simulates erasures while a replay ingests a data set or files into a new "
                                        "store; a store source is replayed in place: remove deletions:")
    check_trigger_units(ctx, source, policies_["trigger"])
    training: TrainingSettings = _simple(ctx, "training", TrainingSettings, d.get("training"), _TRAINING)
    check_device(ctx, training.device)
    check_training(ctx, model, training)
    check_save_every(ctx, training, strategies)
    return PipelineConfig(
        name=name,
        source=source,
        model=model,
        trigger=policies_["trigger"],
        selection=policies_["selection"],
        update=policies_["update"],
        training=training,
        evaluation=_evaluation(ctx, d.get("evaluation")),
        limits=_simple(ctx, "limits", LimitsConfig, d.get("limits"), _LIMITS),
        deletions=None if deletions is None else _simple(ctx, "deletions", DeletionConfig, deletions, _DELETIONS),
        ray=None if ray is None else _ray(ctx, ray),
    )


def _ray(ctx: _Ctx, raw: Any) -> RayConfig:
    """``ray:``, its ``address`` checked for a form ``ray.init`` takes (before Ray is started)."""
    cfg: RayConfig = _simple(ctx, "ray", RayConfig, raw, _RAY)
    problem = ray_address_problem(cfg.address)
    if problem is not None:
        raise ctx.error(("ray", "address"), f"{cfg.address!r}: {problem}")
    return cfg
