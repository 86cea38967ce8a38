"""Input standardization fitted to a train set: :func:`fit_input_scale`.

A model of :mod:`training.models` that standardizes its ``features`` (``logreg``, ``mlp``:
:class:`~training.models.InputScale`) gets the mean and standard deviation of every feature
over the rows of the train set it is trained on from scratch (``TrainConfig.standardize``);
a fine-tuned model keeps its parent's, so that one model sees one scale. Features in their raw
units (a temperature around 60, a vibration around 1) otherwise leave gradient steps tuned to
one of them far too large or too small for the other.

Example
-------
>>> import numpy as np, torch
>>> from training.models import build_model
>>> net = build_model("logreg", in_features=2, n_classes=2)
>>> rows = {"f": np.array([[50.0, 1.0], [70.0, 3.0]], np.float32)}
>>> fit_input_scale(net, rows.get, {"features": "f"})
True
>>> net.input_scale(torch.tensor([[60.0, 2.0]])).tolist()
[[0.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn

from modyn_store.core.errors import InvalidArgumentError
from training.models import InputScale

__all__ = ["fit_input_scale", "mean_std"]

#: rows per block of the statistics' pass (a float64 copy of one block at a time)
BLOCK_ROWS = 65536


def mean_std(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and (population) standard deviation of the 2-D ``rows``, in float64,
    block by block (blocks merged as Chan et al.'s parallel variance), without a float64 copy
    of the whole array.

    >>> m, s = mean_std(np.array([[1.0, 10.0], [3.0, 10.0]]))
    >>> m.tolist(), s.tolist()
    ([2.0, 10.0], [1.0, 0.0])
    """
    n = 0
    mean = np.zeros(rows.shape[1])
    m2 = np.zeros(rows.shape[1])
    for lo in range(0, rows.shape[0], BLOCK_ROWS):
        block = np.asarray(rows[lo : lo + BLOCK_ROWS], dtype=np.float64)
        k = block.shape[0]
        bmean = block.mean(axis=0)
        bm2 = ((block - bmean) ** 2).sum(axis=0)
        delta = bmean - mean
        total = n + k
        mean = mean + delta * (k / total)
        m2 = m2 + bm2 + delta**2 * (n * k / total)
        n = total
    return mean, np.sqrt(m2 / max(n, 1))


def fit_input_scale(net: nn.Module, rows: Callable[[str], np.ndarray | None], inputs: Mapping[str, str]) -> bool:
    """Fit ``net.input_scale`` (if it has one) to the train set's ``features`` rows:
    ``rows(column)`` returns every row of a store column of the train set (2-D for a vector
    column), ``inputs`` maps the model's forward arguments to columns. Returns whether it was
    fitted (not for models without one, an unmapped or empty column, or rows of another width,
    which the model's forward then reports). Rows with an inf or NaN value raise
    :class:`~modyn_store.core.errors.InvalidArgumentError` naming the column."""
    scale = getattr(net, "input_scale", None)
    column = inputs.get("features")
    if not isinstance(scale, InputScale) or column is None:
        return False
    a = rows(column)
    if a is None or a.ndim != 2 or a.shape[0] == 0 or a.shape[1] != scale.shift.shape[0]:
        return False
    with np.errstate(invalid="ignore", over="ignore"):
        mean, std = mean_std(a)
    bad = 0 if np.isfinite(mean).all() and np.isfinite(std).all() else int(np.count_nonzero(~np.isfinite(a).all(axis=1)))
    if bad:  # (finite values too large for float64 statistics leave their feature unscaled)
        raise InvalidArgumentError(f"train set column {column!r}", f"{bad} rows with an inf or NaN value",
                                   "finite values (one makes every weight of the model NaN)")
    with torch.no_grad():
        scale.fit_(torch.from_numpy(mean), torch.from_numpy(std))
    return True
