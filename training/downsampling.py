"""Selection inside training: per-batch downsampling and rescoring every few epochs.

Two hooks of :func:`training.trainer.train` (and :func:`~training.trainer.fit`):

- ``downsample=`` (*batch then sample*): every batch is first scored with the current model in
  evaluation mode and without gradients; ``selector.score_batch(logits, labels, hidden=, keys=)``
  gives one score per row and ``selector.choose_in_batch(scores, seed=)`` the rows (positions)
  to train on and their importance weights, which multiply the train set's weights. Only the
  chosen rows go through the forward/backward pass that updates the model. Any object with those
  two methods works (a score-based selection strategy of :mod:`policies` has them); it may say
  ``needs_labels`` / ``needs_hidden`` (``hidden``: the input of the model's last ``nn.Linear``).
- ``reselect=`` / ``reselect_every=p`` (*sample then batch* with a rescoring period): before
  epochs ``p, 2p, ...`` the trainer calls ``reselect(model) -> TrainSet`` and serves the
  following epochs from the new set. The recorded train set is the union of the sets with one
  epoch plan per epoch (``TrainSet.per_epoch``), so the catalog holds exactly which keys each
  epoch trained on.

Example
-------
>>> import numpy as np, torch
>>> from training.downsampling import BatchThenSample
>>> class Largest:  # keep the half of each batch with the largest first logit
...     def score_batch(self, logits, labels=None, *, hidden=None, keys=None):
...         return logits[:, 0]
...     def choose_in_batch(self, scores, *, seed):
...         pos = np.sort(np.argsort(-scores)[: scores.size // 2])
...         return pos, np.ones(pos.size)
>>> ds = BatchThenSample(Largest())
>>> model = torch.nn.Linear(2, 2)
>>> batch = {"key": torch.arange(4), "x": torch.randn(4, 2)}
>>> pos, w = ds.choose(model, {"input": batch["x"]}, batch, "label", epoch=0, step=0)
>>> pos.numel(), ds.scored, ds.trained
(2, 4, 2)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from engine._search import sorted_unique
from modyn_store.core.errors import InvalidArgumentError

__all__ = ["BatchSelector", "BatchThenSample", "check_gradient_layer", "last_linear", "union_of_epochs"]

#: Scores defined as a gradient w.r.t. the layer whose input is ``hidden``: that layer must be an
#: ``nn.Linear`` with a bias whose output is the logits (see :func:`check_gradient_layer`).
GRADIENT_SCORES = frozenset({"gradnorm"})


@runtime_checkable
class BatchSelector(Protocol):
    """What per-batch downsampling needs of a selection strategy."""

    def score_batch(self, logits: np.ndarray, labels: np.ndarray | None = None, *,
                    hidden: np.ndarray | None = None, keys: np.ndarray | None = None) -> np.ndarray: ...

    def choose_in_batch(self, scores: np.ndarray, *, seed: int) -> tuple[np.ndarray, np.ndarray]: ...


def last_linear(model: nn.Module) -> str:
    """The name of the model's last ``nn.Linear`` submodule (its input is ``h``)."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise InvalidArgumentError("embedding_layer", None,
                                   "a submodule name (the model has no nn.Linear to default to)")
    return names[-1]


def check_gradient_layer(model: nn.Module, name: str, output: torch.Tensor | None = None,
                         logits: torch.Tensor | None = None) -> None:
    """Refuse a layer for which ``gradnorm`` (the norm of the loss gradient w.r.t. the layer's
    weight and bias, ``|p - y| * sqrt(1 + |h|^2)``) is not that gradient's norm.

    The formula holds for an ``nn.Linear`` with a bias whose output gives the model's class
    probabilities (its output, or one that differs by a per-row constant, as ``log_softmax`` of
    it does). Without ``output`` and ``logits`` only the layer is checked; with them, one
    batch's layer output against the model's logits.
    """
    layer = model.get_submodule(name)
    if not isinstance(layer, nn.Linear) or layer.bias is None:
        what = "an nn.Linear without a bias" if isinstance(layer, nn.Linear) else type(layer).__name__
        raise InvalidArgumentError(
            "embedding_layer", name,
            f"an nn.Linear with a bias (gradnorm is the loss gradient's norm w.r.t. that layer's weight "
            f"and bias; {name!r} is {what})")
    if logits is None:
        return
    same = (output is not None and output.shape == logits.shape
            and torch.allclose(torch.softmax(output.detach().double(), 1),
                               torch.softmax(logits.detach().double(), 1), rtol=1e-6, atol=1e-9))
    if not same:
        raise InvalidArgumentError(
            "embedding_layer", name,
            "the layer whose output is the model's logits (gradnorm is the loss gradient's norm w.r.t. "
            f"that layer; the model changes {name!r}'s output before returning it)")


def capture_hook(inputs: list[torch.Tensor], outputs: list[torch.Tensor]) -> Any:
    """A forward hook keeping a layer's first input and its output (it returns None: a hook's
    return value would replace the output)."""

    def hook(_module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        inputs.append(args[0].detach())
        outputs.append(out)

    return hook


def _seed(seed: int, epoch: int, step: int) -> int:
    state = np.random.SeedSequence([int(seed) & (2**63 - 1), 0x5E1EC7, int(epoch), int(step)])
    return int(state.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


@dataclass
class BatchThenSample:
    """Scores each batch with the current model and keeps the rows ``selector`` chooses.

    Parameters
    ----------
    selector:
        A :class:`BatchSelector` (e.g. ``policies.Loss(ratio=0.25, mode="batch_then_sample")``).
    seed:
        Seeds ``choose_in_batch`` per (epoch, batch).
    embedding_layer:
        The submodule whose input is ``hidden`` (default: the last ``nn.Linear``), used when the
        selector's ``needs_hidden`` is true.

    ``scored`` and ``trained`` count the rows seen and the rows trained on.
    """

    selector: Any
    seed: int = 0
    embedding_layer: str | None = None
    scored: int = 0
    trained: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.selector, BatchSelector):
            raise InvalidArgumentError("downsample", type(self.selector).__name__,
                                       "an object with score_batch() and choose_in_batch()")

    def choose(self, model: nn.Module, args: Mapping[str, torch.Tensor], batch: Mapping[str, Any],
               label: str, *, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions (a long tensor on the batch's device) and importance weights of the rows to train on."""
        needs_hidden = bool(getattr(self.selector, "needs_hidden", False))
        needs_labels = bool(getattr(self.selector, "needs_labels", True))
        captured: list[torch.Tensor] = []
        outputs: list[torch.Tensor] = []
        hook = None
        gradient = getattr(self.selector, "score", None) in GRADIENT_SCORES
        if needs_hidden:
            name = self.embedding_layer or last_linear(model)
            if gradient:
                check_gradient_layer(model, name)
            hook = model.get_submodule(name).register_forward_hook(capture_hook(captured, outputs))
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                logits = model(**args)
        finally:
            model.train(was_training)
            if hook is not None:
                hook.remove()
        if needs_hidden and gradient and captured:
            check_gradient_layer(model, name, outputs[-1], logits)
        z = logits.detach().double().cpu().numpy()
        y = batch[label].detach().cpu().numpy() if needs_labels and label in batch else None
        h = captured[-1].double().reshape(z.shape[0], -1).cpu().numpy() if captured else None
        keys = batch["key"].detach().cpu().numpy() if "key" in batch else None
        scores = np.asarray(self.selector.score_batch(z, y, hidden=h, keys=keys), dtype=np.float64)
        pos, weights = self.selector.choose_in_batch(scores, seed=_seed(self.seed, epoch, step))
        pos = np.asarray(pos, dtype=np.int64)
        weights = np.asarray(weights, dtype=np.float64)
        if pos.shape != weights.shape or (pos.size and (pos.min() < 0 or pos.max() >= z.shape[0])):
            raise InvalidArgumentError("choose_in_batch", (pos.shape, weights.shape),
                                       f"positions in [0, {z.shape[0]}) with one weight each")
        self.scored += int(z.shape[0])
        self.trained += int(pos.size)
        dev = logits.device
        return torch.from_numpy(pos).to(dev), torch.from_numpy(weights).to(dev)


def union_of_epochs(sets: list[Any], epochs: int) -> Any:
    """One ``TrainSet``: the union of ``sets[e]`` (the set of epoch ``e``) with a plan per epoch.

    A key chosen in several sets keeps the weight of the last set that chose it in ``weights``;
    when some key's weight differs between the sets, ``per_epoch_weights`` holds each epoch's own.
    """
    from modyn_store.core.trainset import TrainSet

    sets = sets[: max(epochs, 1)]
    keys = sorted_unique(np.concatenate([s.keys for s in sets]))
    weights = np.ones(keys.size)
    plans = []
    seen = np.zeros(keys.size, dtype=bool)
    alike = True  # every key weighs the same in every set that chose it
    for s in sets:
        pos = np.searchsorted(keys, s.keys)
        again = seen[pos]
        alike = alike and bool(np.array_equal(weights[pos][again], s.weights[again]))
        weights[pos] = s.weights
        seen[pos] = True
        plans.append(pos)
    return TrainSet(keys=keys, weights=weights, version=max(s.version for s in sets), per_epoch=tuple(plans),
                    per_epoch_weights=None if alike else tuple(s.weights for s in sets))
