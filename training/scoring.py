"""Scoring passes: one batched forward pass writing per-sample scores back to the store.

The score names, their definitions and kernels are the engine's one registry,
:mod:`engine.score_registry`; a pass computes every registered score whose inputs one forward
pass gives (logits, labels and ``h``, the input of the last linear layer): :data:`SCORES`.
``irreducible_loss`` is ``loss`` under the irreducible-loss model of RHO-LOSS (score with that
model).

The pass runs on any device: on CPU the scores come from the engine's kernels, on a GPU from the
torch equivalents next to the logits (the same definitions; the tests check both against the
engine). Each score is written with :meth:`Store.scores.write_many` as one version, tagged with
``training_id``.

Example
-------
>>> import numpy as np, pyarrow as pa, torch
>>> from modyn_store import Store
>>> from training.scoring import score
>>> store = Store.open("memory://scoring-doc", create=True)
>>> x = np.eye(3, dtype=np.float32)
>>> _ = store.append(pa.table({"ts": [0, 1, 2], "label": [0, 1, 2],
...                            "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 3)}))
>>> model = torch.nn.Linear(3, 3)
>>> out = score(store, model, inputs={"input": "x"}, scores=("loss", "entropy"))
>>> sorted(out.values), out.keys.tolist()
(['entropy', 'loss'], [0, 1, 2])
>>> store.scores.as_of(None, "loss").num_rows
3
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from engine import score_registry
from modyn_store.core.errors import InvalidArgumentError, UnknownKeyError, engine_errors
from modyn_store.core.trainset import TrainSet
from training.downsampling import GRADIENT_SCORES, capture_hook, check_gradient_layer, last_linear
from training.loading import LoaderOptions, loader
from training.trainer import Prepare, check_inputs, model_inputs

__all__ = ["SCORES", "ScoreResult", "check_writable", "class_codes", "last_linear", "score", "scores_from_logits"]

#: Scores one forward pass can compute (registry entries whose inputs are logits/labels/hidden).
SCORES: tuple[str, ...] = tuple(
    n for n, spec in score_registry.SCORES.items() if set(spec.inputs) <= {"logits", "labels", "hidden"})
_NEED_LABEL = frozenset(n for n in SCORES if score_registry.SCORES[n].needs_labels)
_NEED_EMBEDDING = frozenset(n for n in SCORES if score_registry.SCORES[n].needs_hidden)


@dataclass(frozen=True)
class ScoreResult:
    """Scores of one pass: ``values[name]`` aligned with ``keys``; ``versions[name]`` the store version written."""

    keys: np.ndarray
    values: dict[str, np.ndarray] = field(repr=False)
    versions: dict[str, int] = field(default_factory=dict)


#: what a label must be to score (a float label is a class code only when a whole number)
_CODES = "integer class codes (a float label must be a whole number: a fraction is no class)"


def _first_bad_float(labels: torch.Tensor) -> int | None:
    """The position of the first NaN, infinite, fractional or beyond-``2**53`` value of a
    float ``labels`` tensor (``None`` when none is, or the tensor is not float): ``.long()``
    would truncate 1.7 to class 1 and make NaN an arbitrary integer."""
    if not labels.is_floating_point():
        return None
    y = labels.reshape(-1)
    bad = ~torch.isfinite(y) | (y != torch.trunc(y)) | (y.abs() > 2.0**53)
    return int(torch.nonzero(bad)[0, 0]) if bool(bad.any()) else None


def class_codes(labels: torch.Tensor, *, name: str = "labels") -> torch.Tensor:
    """``labels`` as int64 class codes: integer and boolean tensors as they are, float ones only
    when every value is a whole number (0.0, 1.0); otherwise :class:`InvalidArgumentError`
    naming ``name[i]`` of the first bad value (one vectorized check, no loop over rows)."""
    i = _first_bad_float(labels)
    if i is not None:
        raise InvalidArgumentError(f"{name}[{i}]", float(labels.reshape(-1)[i]), _CODES)
    return labels.long()


def check_writable(store: Any, version: int, keys: Callable[[], np.ndarray]) -> None:
    """Refuse, before any forward pass, a scoring pass whose scores could not be written: scores
    are written for keys live at the latest version, so keys (``keys()``, read only when
    ``version`` is not the latest) deleted or erased since ``version`` raise the
    :class:`UnknownKeyError` the write would raise after the whole pass."""
    latest = store.as_of(None)
    if latest.version == version:
        return
    k = np.asarray(keys(), dtype=np.int64)
    live = latest.contains(k) if k.size else np.ones(0, dtype=bool)
    if not live.all():
        bad = np.sort(k[~live])
        raise UnknownKeyError(
            f"{bad.size} keys are not live, e.g. {bad[:5].tolist()}: deleted or erased since version {version} "
            f"(latest {latest.version}); scores are written for live keys only: score with write=False, or the "
            f"latest version")


def _engine_scores(
    names: Sequence[str], logits: torch.Tensor, labels: torch.Tensor | None, hidden: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """Scores from the registry's engine kernels (CPU)."""
    z = logits.detach().double().numpy()
    y = labels.long().numpy() if labels is not None else None
    h = hidden.detach().double().reshape(hidden.shape[0], -1).numpy() if hidden is not None else None
    with engine_errors():
        return {n: torch.from_numpy(np.asarray(score_registry.compute(n, logits=z, labels=y, hidden=h),
                                               dtype=np.float64)) for n in names}


def scores_from_logits(
    names: Sequence[str],
    logits: torch.Tensor,
    labels: torch.Tensor | None,
    hidden: torch.Tensor | None = None,
    *,
    use_engine: bool | None = None,
) -> dict[str, torch.Tensor]:
    """The requested scores of one batch (float64 tensors on the logits' device).

    ``use_engine`` (default: when the logits are on the CPU) computes what it can with the
    engine's kernels; otherwise torch computes everything, with the kernels' definitions: a row
    with a NaN or infinite logit scores NaN (``embedding`` aside), and finite logits score
    finite values (``loss`` aside, ``+inf`` for a label whose probability underflows to 0); a
    label outside ``[0, classes)`` raises :class:`InvalidArgumentError` naming ``labels[i]``, and
    so does a float label that is not a whole number (fractional, NaN or infinite: see
    :func:`class_codes`).
    """
    unknown = [n for n in names if n not in SCORES]
    if unknown:
        raise InvalidArgumentError("scores", list(names), f"names from {list(SCORES)}")
    if labels is None and any(n in _NEED_LABEL for n in names):
        raise InvalidArgumentError("labels", None, f"labels (needed by {sorted(_NEED_LABEL & set(names))})")
    if labels is not None and any(n in _NEED_LABEL for n in names):
        labels = class_codes(labels)  # a fractional, NaN or infinite float label is refused, never truncated
    if hidden is None and any(n in _NEED_EMBEDDING for n in names):
        raise InvalidArgumentError("hidden", None, f"the last layer's input (needed by {sorted(_NEED_EMBEDDING & set(names))})")
    if use_engine if use_engine is not None else logits.device.type == "cpu":
        return _engine_scores(names, logits, labels, hidden)
    z = logits.double()
    logp = torch.log_softmax(z, dim=1)
    p = logp.exp()
    # as the engine's kernels: a row with a NaN or infinite logit scores NaN (an -inf logit
    # would otherwise give finite scores here and NaN there), and a probability that underflows
    # to 0 adds 0 to the entropy (its log is -inf and the product NaN)
    nonfinite = ~torch.isfinite(z).all(dim=1)
    if labels is not None and any(n in _NEED_LABEL for n in names):
        # as the engine's kernels: a label outside the classes is refused, typed (torch's
        # gather raises a bare error on the CPU and a device-side assert on CUDA)
        codes = labels.long()
        bad = (codes < 0) | (codes >= z.shape[1])
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0, 0])
            raise InvalidArgumentError(f"labels[{i}]", int(codes[i]), f"a class in [0, {z.shape[1]})")
    out: dict[str, torch.Tensor] = {}
    err = None
    if labels is not None and any(n in ("el2n", "gradnorm") for n in names):
        onehot = torch.nn.functional.one_hot(labels.long(), num_classes=z.shape[1]).double()
        err = torch.linalg.vector_norm(p - onehot, dim=1)
    for n in names:
        if n in ("loss", "irreducible_loss"):
            assert labels is not None
            out[n] = -logp.gather(1, labels.long().reshape(-1, 1)).reshape(-1)
        elif n == "least_confidence":
            out[n] = 1.0 - p.max(dim=1).values
        elif n == "entropy":
            out[n] = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(dim=1)
        elif n == "margin":
            top = torch.topk(p, k=min(2, p.shape[1]), dim=1).values
            out[n] = top[:, 0] - top[:, 1] if top.shape[1] > 1 else top[:, 0]
        elif n == "el2n":
            assert err is not None
            out[n] = err
        elif n == "gradnorm":
            assert err is not None and hidden is not None
            hh = hidden.double().reshape(hidden.shape[0], -1)
            # as the engine: a row whose layer input is not finite (an overflowed activation) is NaN
            out[n] = (err * torch.sqrt(1.0 + (hh * hh).sum(dim=1))).masked_fill(
                ~torch.isfinite(hh).all(dim=1), float("nan"))
        elif n == "embedding":
            assert hidden is not None
            out[n] = hidden.double().reshape(hidden.shape[0], -1)
    for n in out:
        if n != "embedding":  # the layer's input, not a function of the logits
            out[n] = out[n].masked_fill(nonfinite, float("nan"))
    return out


def _batch_labels(batch: Mapping[str, Any], label: str) -> torch.Tensor:
    """A batch's labels as class codes; a bad float label names ``label``, its value and key."""
    y = batch[label]
    i = _first_bad_float(y) if isinstance(y, torch.Tensor) else None
    if i is not None:
        key = int(batch["key"].reshape(-1)[i])
        value = float(y.reshape(-1)[i])
        raise InvalidArgumentError("label", f"{label!r} value {value} in the row of key {key}", _CODES)
    return y  # type: ignore[no-any-return]


def score(
    store: Any,
    model: nn.Module,
    *,
    inputs: Mapping[str, str],
    train_set: TrainSet | None = None,
    version: int | None = None,
    label: str = "label",
    scores: Sequence[str] = ("loss", "least_confidence", "entropy", "margin", "el2n"),
    embedding_layer: str | None = None,
    batch_size: int = 4096,
    device: str = "cpu",
    training_id: str | None = None,
    write: bool = True,
    prepare: Prepare | None = None,
    loader_options: LoaderOptions | None = None,
) -> ScoreResult:
    """Score every sample of a train set (or of the snapshot at ``version``) with ``model``.

    Parameters
    ----------
    store:
        The store to read samples from and write scores to.
    model:
        A module returning logits ``[B, classes]``.
    inputs:
        Forward argument -> column (as in :class:`~training.trainer.TrainConfig`).
    train_set, version:
        What to score: every key of a train set once (its per-epoch plans aside), or every
        live sample at ``version`` (default: latest).
    scores:
        Names from :data:`SCORES`.
    embedding_layer:
        Name of the submodule whose *input* is ``h`` (for ``embedding`` and ``gradnorm``);
        default: the model's last ``nn.Linear``.
    label:
        The label column (for the scores that need labels): integer class codes; a float column
        only of whole numbers (0.0, 1.0). A fractional, NaN or infinite label raises
        :class:`InvalidArgumentError` naming ``label``, the value and its row's key, before that
        batch's forward pass, and nothing is written.
    write:
        Write the scores to the store (one version for all of them) tagged with ``training_id``.
        Scores are written for live keys only: when keys of ``version`` (or of ``train_set``)
        were deleted or erased since, :class:`UnknownKeyError` is raised before any forward pass.
    """
    names = list(scores)
    unknown = [n for n in names if n not in SCORES]
    if unknown or not names or len(set(names)) != len(names):
        raise InvalidArgumentError("scores", names, f"distinct names from {SCORES}")
    check_inputs(inputs)
    if any(n in _NEED_EMBEDDING for n in names) and embedding_layer is None:
        embedding_layer = last_linear(model)
    if train_set is None:
        snap = store.as_of(version)
        train_set = TrainSet.uniform(snap.keys(), version=snap.version)
    elif version is not None:
        raise InvalidArgumentError("version", version, "None when train_set is given")
    else:
        # every key of the set once, not one epoch's plan (a loader serves a single epoch); the
        # scores do not use the weights (so weights no float32 holds are no reason to refuse)
        train_set = TrainSet.uniform(train_set.keys, version=train_set.version)
    if write:
        scored = train_set
        check_writable(store, scored.version, lambda: scored.keys)
    need_label = any(n in _NEED_LABEL for n in names)
    cols = list(dict.fromkeys([*inputs.values(), *([label] if need_label else [])]))
    dl = loader(store, train_set, columns=cols, batch_size=batch_size, shuffle=False, device=device,
                options=loader_options)
    dev = torch.device(device)
    captured: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    hook = None
    gradient = bool(GRADIENT_SCORES & set(names))
    if embedding_layer is not None:
        try:
            layer = model.get_submodule(embedding_layer)
        except AttributeError as exc:
            raise InvalidArgumentError("embedding_layer", embedding_layer, "a submodule name of the model") from exc
        if gradient:
            check_gradient_layer(model, embedding_layer)
        hook = layer.register_forward_hook(capture_hook(captured, outputs))
    was_training = model.training
    model.to(dev).eval()
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    keys: list[np.ndarray] = []
    try:
        with torch.no_grad():
            for batch in dl:
                captured.clear()
                outputs.clear()
                labels = _batch_labels(batch, label) if need_label else None
                args = prepare(batch) if prepare is not None else model_inputs(batch, inputs)
                logits = model(**{k: v.to(dev, non_blocking=True) for k, v in args.items()})
                labels = labels.to(dev) if labels is not None else None
                hidden = captured[-1] if captured else None
                if gradient and embedding_layer is not None and outputs:
                    check_gradient_layer(model, embedding_layer, outputs[-1], logits)
                for n, v in scores_from_logits(names, logits, labels, hidden).items():
                    parts[n].append(v.cpu().numpy())
                keys.append(batch["key"].cpu().numpy())
    finally:
        if hook is not None:
            hook.remove()
        model.train(was_training)
    all_keys = np.concatenate(keys) if keys else np.empty(0, np.int64)
    values = {n: np.concatenate(p) if p else np.empty(0) for n, p in parts.items()}
    versions: dict[str, int] = {}
    if write and all_keys.size:
        version = store.scores.write_many(all_keys, values, training_id=training_id).version
        versions = {n: version for n in values}
    return ScoreResult(all_keys, values, versions)
