"""The one registry of per-sample score names: what each score is and who computes and reads it.

Every score the product knows has one :class:`ScoreSpec` in :data:`SCORES`: its definition, its
shape (one number per sample, or a vector), the inputs its kernel needs, whether a larger value
means "more informative", who computes it (the model scoring pass, the runner's irreducible-loss
model, or a combination of stored scores) and the selection strategies that read it. The
training API, the selection strategies, the pipeline's configuration checks and
``docs/policies.md`` all read this table; a test holds the docs to it both ways.

Kernels take the arrays named in ``inputs`` as keyword arguments (``logits [n, c]``,
``labels [n]``, ``hidden [n, d]`` = the input of the model's last linear layer, ``loss``,
``irreducible_loss``) and return ``n`` float64 scores (``[n, d]`` for vector scores).

Example
-------
>>> import numpy as np
>>> from engine import score_registry as reg
>>> reg.get("gradnorm").inputs
('logits', 'labels', 'hidden')
>>> z = np.array([[2.0, 0.0]]); h = np.array([[3.0, 4.0]])
>>> np.round(reg.compute("gradnorm", logits=z, labels=[1], hidden=h), 4).tolist()
[6.3515]
>>> reg.get("nope")
Traceback (most recent call last):
...
engine.errors.EngineInputError: invalid score='nope': expected one of ['el2n', 'embedding', 'entropy', 'gradnorm', 'irreducible_loss', 'least_confidence', 'loss', 'margin', 'rho_loss']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from engine import scores as _k
from engine._validate import as_float_2d, check_same_length
from engine.errors import EngineInputError

__all__ = ["INPUTS", "MODEL_PASS", "SCORES", "ScoreSpec", "compute", "get", "names"]

#: The inputs a kernel may need.
INPUTS = ("logits", "labels", "hidden", "loss", "irreducible_loss")
#: ``computed_by`` of the scores one forward pass of the current model yields.
MODEL_PASS = "model scoring pass"


@dataclass(frozen=True)
class ScoreSpec:
    """One score name.

    Attributes
    ----------
    name:
        The name scores are stored and requested under.
    definition:
        The formula, in words (``p = softmax(logits)``, ``y`` the label, ``h`` the input of the
        last linear layer).
    shape:
        ``"scalar"`` (one float per sample) or ``"vector"`` (``[n, d]``).
    inputs:
        What :attr:`kernel` needs, a subset of :data:`INPUTS`.
    largest:
        ``True`` when a larger value is more informative, ``False`` when a smaller one is, ``None``
        when the score is not ranked (embeddings).
    computed_by:
        :data:`MODEL_PASS`, ``"irreducible-loss model"`` or ``"derived"`` (from other scores).
    read_by:
        Names of the selection strategies that read the score.
    kernel:
        The engine function computing it.
    """

    name: str
    definition: str
    shape: Literal["scalar", "vector"]
    inputs: tuple[str, ...]
    largest: bool | None
    computed_by: str
    read_by: tuple[str, ...]
    kernel: Callable[..., np.ndarray]

    @property
    def needs_labels(self) -> bool:
        """Whether the kernel needs labels."""
        return "labels" in self.inputs

    @property
    def needs_hidden(self) -> bool:
        """Whether the kernel needs the input of the model's last linear layer."""
        return "hidden" in self.inputs


def grad_norm(logits: Any, labels: Any, hidden: Any) -> np.ndarray:
    """Exact per-sample norm of the cross-entropy gradient w.r.t. the last linear layer.

    For logits ``z = W h + b`` the gradient w.r.t. ``(W, b)`` is ``((p - y) h^T, p - y)``, so its
    L2 norm is ``|p - onehot(y)|_2 * sqrt(1 + |h|_2^2)`` (Katharopoulos & Fleuret, 2018, sample
    importance by gradient norm). NaN when a logit or ``h`` is not finite.
    """
    err = _k.el2n(logits, labels)
    h = as_float_2d("hidden", hidden)
    check_same_length("hidden", h, err.shape[0], "logits")
    sq = np.einsum("ij,ij->i", h, h, dtype=np.float64)
    factor = np.sqrt(1.0 + sq)
    odd = np.flatnonzero(~np.isfinite(sq))  # a non-finite h, or |h|^2 beyond float64
    if odd.size:
        rows = h[odd].astype(np.float64)
        finite = np.isfinite(rows).all(axis=1)
        scale = np.where(finite, np.abs(np.where(np.isfinite(rows), rows, 0.0)).max(axis=1), 1.0)
        with np.errstate(over="ignore"):
            norm = scale * np.sqrt(np.einsum("ij,ij->i", rows / scale[:, None], rows / scale[:, None]))
            factor[odd] = np.where(finite, np.hypot(1.0, norm), np.nan)
    with np.errstate(over="ignore", invalid="ignore"):
        return err * factor


def embedding(hidden: Any) -> np.ndarray:
    """The input of the model's last linear layer, as float64 ``[n, d]``."""
    return np.asarray(as_float_2d("hidden", hidden), dtype=np.float64)


def _irreducible(logits: Any, labels: Any) -> np.ndarray:
    return _k.cross_entropy(logits, labels)


def _rho(loss: Any, irreducible_loss: Any) -> np.ndarray:
    return _k.rho_loss(loss, irreducible_loss)


_SPECS = (
    ScoreSpec("loss", "cross entropy -log p[y]", "scalar", ("logits", "labels"), True, MODEL_PASS,
              ("loss", "rho_loss", "like_misclassified"), _k.cross_entropy),
    ScoreSpec("least_confidence", "1 - max p", "scalar", ("logits",), True, MODEL_PASS,
              ("least_confidence", "like_misclassified"), _k.least_confidence),
    ScoreSpec("entropy", "-sum p log p (nats)", "scalar", ("logits",), True, MODEL_PASS,
              ("entropy",), _k.entropy),
    ScoreSpec("margin", "p[top1] - p[top2] (small = uncertain)", "scalar", ("logits",), False,
              MODEL_PASS, ("margin",), _k.margin),
    ScoreSpec("el2n", "|p - onehot(y)|_2", "scalar", ("logits", "labels"), True, MODEL_PASS,
              ("el2n",), _k.el2n),
    ScoreSpec("gradnorm", "|p - onehot(y)|_2 * sqrt(1 + |h|_2^2): the norm of the loss gradient "
              "w.r.t. the last linear layer's weight and bias (exact; Katharopoulos & Fleuret 2018 "
              "rank by their upper bound, the norm of the gradient w.r.t. the logits, "
              "|p - onehot(y)|_2, which is the el2n score)", "scalar",
              ("logits", "labels", "hidden"), True, MODEL_PASS, ("gradnorm",), grad_norm),
    ScoreSpec("embedding", "h, the input of the last linear layer", "vector", ("hidden",), None,
              MODEL_PASS, ("kcenter_greedy", "near_duplicates", "like_misclassified", "coverage"),
              embedding),
    ScoreSpec("irreducible_loss", "-log p[y] under the irreducible-loss model (trained on the "
              "holdout split)", "scalar", ("logits", "labels"), False, "irreducible-loss model",
              ("rho_loss",), _irreducible),
    ScoreSpec("rho_loss", "loss - irreducible_loss (reducible holdout loss)", "scalar",
              ("loss", "irreducible_loss"), True, "derived", ("rho_loss",), _rho),
)

#: name -> :class:`ScoreSpec`, the whole registry.
SCORES: dict[str, ScoreSpec] = {s.name: s for s in _SPECS}


def names(*, computed_by: str | None = None) -> tuple[str, ...]:
    """Registered score names (optionally only those ``computed_by`` one producer), sorted."""
    return tuple(sorted(n for n, s in SCORES.items()
                        if computed_by is None or s.computed_by == computed_by))


def get(name: Any) -> ScoreSpec:
    """The spec of ``name``; an unknown name raises :class:`EngineInputError` listing the known."""
    spec = SCORES.get(name) if isinstance(name, str) else None
    if spec is None:
        raise EngineInputError("score", name, f"one of {sorted(SCORES)}")
    return spec


def compute(name: str, **arrays: Any) -> np.ndarray:
    """Score ``name`` from the arrays its spec names (extra arrays are ignored).

    Missing inputs raise :class:`EngineInputError` naming the input.
    """
    spec = get(name)
    args = {}
    for i in spec.inputs:
        if arrays.get(i) is None:
            raise EngineInputError(i, None, f"an array (score {name!r} needs {list(spec.inputs)})")
        args[i] = arrays[i]
    return spec.kernel(**args)
