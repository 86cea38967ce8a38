"""Per-sample scores from a model's logits: loss, uncertainty, EL2N, RHO-LOSS.

The kernels; which score names exist, what they mean and who reads them is
:mod:`engine.score_registry`.

All functions take ``logits`` of shape ``(n, classes)`` (float32 or float64; computed in float64
with the max-subtracted log-sum-exp) and return a float64 array of ``n`` scores. A row with any
NaN or infinite logit scores NaN (and ``top_k`` never selects NaN); finite logits score finite
values, except ``cross_entropy`` of a label whose logit lies more than ~1.8e308 below the
largest, which is ``+inf`` (its probability underflows to 0, as in SciPy). Labels are integers
in ``[0, classes)``.

Direction: for ``cross_entropy``, ``least_confidence``, ``entropy``, ``el2n`` and ``rho_loss``
larger means more informative; for ``margin`` (top-1 minus top-2 probability) *smaller* means
more uncertain, so select it with ``bottom_k``.

Example
-------
>>> import numpy as np
>>> from engine import scores
>>> z = np.array([[2.0, 0.0], [0.0, 0.0]])
>>> np.round(scores.least_confidence(z), 4).tolist()
[0.1192, 0.5]
>>> np.round(scores.margin(z), 4).tolist()
[0.7616, 0.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from engine._blocks import PARALLEL_ROWS, n_blocks
from engine._validate import as_float_1d, as_float_2d, as_int64_1d, check_same_length, describe
from engine.errors import EngineInputError

__all__ = [
    "cross_entropy",
    "el2n",
    "entropy",
    "least_confidence",
    "margin",
    "rho_loss",
]

_LOSS = 0
_LEAST_CONFIDENCE = 1
_ENTROPY = 2
_MARGIN = 3
_EL2N = 4


@njit(cache=True)
def _score_block(z, labels, kind, out, lo, hi):  # type: ignore[no-untyped-def]
    """Scores of rows ``lo:hi``. With ``mx`` the largest logit, ``rest`` = the sum of
    ``exp(z_j - mx)`` over every logit but one largest, so the softmax denominator is
    ``1 + rest`` and ``log p_j = (z_j - mx) - log1p(rest)``: neither rounds away a small
    ``rest`` (confident rows: a loss of 1e-18 stays 1e-18, not 0) nor adds ``log1p(rest)`` to a
    huge ``mx`` (logits of 1e30: the probabilities still sum to 1)."""
    c = z.shape[1]
    for i in range(lo, hi):
        row = z[i]
        mx = -np.inf
        at = 0  # the first largest logit
        finite = True
        for j in range(c):
            v = np.float64(row[j])
            if not np.isfinite(v):
                finite = False
            if v > mx:
                mx = v
                at = j
        if not finite:
            out[i] = np.nan
            continue
        rest = 0.0  # exp(z_j - mx) of every logit but the first largest (its term is 1)
        for j in range(c):
            e = np.exp(np.float64(row[j]) - mx)
            rest += 0.0 if j == at else e
        s = 1.0 + rest
        log_s = np.log1p(rest) if rest < 0.25 else np.log(s)  # log is cheaper; exact enough there
        if kind == _LOSS:
            out[i] = (mx - np.float64(row[labels[i]])) + log_s
        elif kind == _LEAST_CONFIDENCE:
            out[i] = rest / s  # 1 - 1/s, the largest probability being exp(0) / s
        elif kind == _ENTROPY:
            h = 0.0
            for j in range(c):
                lp = (np.float64(row[j]) - mx) - log_s
                p = np.exp(lp)
                # p log p -> 0 as p -> 0; a logit more than 1.8e308 below the largest makes
                # lp = -inf and p = 0, whose product would be NaN
                h -= p * lp if p > 0.0 else 0.0
            out[i] = h
        elif kind == _MARGIN:
            second = -np.inf
            seen_max = False
            for j in range(c):
                v = np.float64(row[j])
                if v == mx and not seen_max:
                    seen_max = True
                elif v > second:
                    second = v
            out[i] = (1.0 - np.exp(second - mx)) / s
        else:
            acc = 0.0
            y = labels[i]
            py = 0.0
            for j in range(c):
                p = np.exp((np.float64(row[j]) - mx) - log_s)
                at_y = j == y
                acc += 0.0 if at_y else p * p
                py = p if at_y else py
            # p_y - 1 without cancellation: -rest / s for a largest logit
            py = -rest / s if np.float64(row[y]) == mx else py - 1.0
            out[i] = np.sqrt(acc + py * py)


@njit(cache=True, parallel=True)
def _score_par(z, labels, kind, out, nb):  # type: ignore[no-untyped-def]
    n = z.shape[0]
    for b in prange(nb):
        _score_block(z, labels, kind, out, (b * n) // nb, ((b + 1) * n) // nb)


@njit(cache=True)
def _score_rows(z, labels, kind):  # type: ignore[no-untyped-def]
    n, c = z.shape
    out = np.empty(n, dtype=np.float64)
    nb = n_blocks(n * c, PARALLEL_ROWS // 8)  # a row costs a few exp per column
    if nb == 1:
        _score_block(z, labels, kind, out, 0, n)
    else:
        _score_par(z, labels, kind, out, nb)
    return out


def _logits(logits: Any) -> np.ndarray:
    z = as_float_2d("logits", logits)
    if z.shape[1] == 0:
        raise EngineInputError("logits", describe(z), "at least one class (column)")
    return z


def _labels(labels: Any, z: np.ndarray) -> np.ndarray:
    if labels is None:
        raise EngineInputError("labels", None, "integer labels, one per row of logits")
    y = as_int64_1d("labels", labels)
    check_same_length("labels", y, z.shape[0], "logits")
    bad = np.flatnonzero((y < 0) | (y >= z.shape[1]))
    if bad.size:
        raise EngineInputError(f"labels[{bad[0]}]", int(y[bad[0]]), f"a class in [0, {z.shape[1]})")
    return y


_NO_LABELS = np.empty(0, dtype=np.int64)


def cross_entropy(logits: Any, labels: Any) -> np.ndarray:
    """Per-sample cross-entropy loss ``logsumexp(z) - z[label]`` (the training loss)."""
    z = _logits(logits)
    return _score_rows(z, _labels(labels, z), _LOSS)  # type: ignore[no-any-return]


def least_confidence(logits: Any) -> np.ndarray:
    """``1 - max softmax probability``; in ``[0, 1 - 1/classes]``."""
    return _score_rows(_logits(logits), _NO_LABELS, _LEAST_CONFIDENCE)  # type: ignore[no-any-return]


def entropy(logits: Any) -> np.ndarray:
    """Predictive entropy ``-sum p log p`` in nats."""
    return _score_rows(_logits(logits), _NO_LABELS, _ENTROPY)  # type: ignore[no-any-return]


def margin(logits: Any) -> np.ndarray:
    """Top-1 minus top-2 softmax probability (1.0 with a single class); small = uncertain."""
    return _score_rows(_logits(logits), _NO_LABELS, _MARGIN)  # type: ignore[no-any-return]


def el2n(logits: Any, labels: Any) -> np.ndarray:
    """EL2N: ``||softmax(z) - onehot(label)||_2`` (Paul et al. 2021).

    It is also the norm of the loss gradient w.r.t. the logits; the gradient norm w.r.t. the last
    linear layer is ``engine.score_registry.grad_norm``.
    """
    z = _logits(logits)
    return _score_rows(z, _labels(labels, z), _EL2N)  # type: ignore[no-any-return]


def rho_loss(loss: Any, irreducible_loss: Any) -> np.ndarray:
    """RHO-LOSS reducible loss: training loss minus irreducible (holdout-model) loss.

    >>> rho_loss([2.0, 0.5], [0.5, 0.5]).tolist()
    [1.5, 0.0]
    """
    a = as_float_1d("loss", loss, keep_float32=False)
    b = as_float_1d("irreducible_loss", irreducible_loss, keep_float32=False)
    check_same_length("irreducible_loss", b, a.shape[0], "loss")
    return a - b

