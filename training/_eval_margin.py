"""The half-width of a 95% confidence interval of a metric measured on an evaluation sample.

Part of :mod:`training.eval_sample` (which describes the intervals and re-exports
:func:`margin`, :func:`predictions` and :data:`Z95`).

Example
-------
>>> import numpy as np
>>> from training.eval_sample import SliceKeys
>>> margin("accuracy", np.array([0, 1]), np.array([[1.0, 0.0], [0.0, 1.0]]), SliceKeys(np.arange(2), 2), value=1.0)
0.0
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from training.auc import _auc_binary, log_odds

if TYPE_CHECKING:
    from training.eval_sample import SliceKeys

__all__ = ["Z95", "margin", "predictions"]

Z95 = 1.959963984540054


def _strat_margin(values: np.ndarray, strata: np.ndarray, part: SliceKeys) -> float:
    """Half-width of the 95% interval of a mean, stratified, finite-population corrected.

    A stratum sampled in part with fewer than 2 rows has no variance estimate: the interval is
    then that of a simple random sample of the slice (every row has the same chance, see
    :func:`training.eval_sample._allocate`), and NaN when fewer than 2 rows were sampled at all."""
    n_all = part.population
    if values.size == 0 or n_all == 0:
        return math.nan
    groups: dict[Any, int] = dict(part.strata) if part.strata else {None: n_all}
    sizes = {c: int(values.size if c is None else np.sum(strata == c)) for c in groups}
    if any(sizes[c] < min(2, pop) for c, pop in groups.items() if sizes[c] < pop):
        groups, sizes = {None: n_all}, {None: int(values.size)}
    var = 0.0
    for c, pop in groups.items():
        n = sizes[c]
        if n == 0 or pop == 0 or n >= pop:
            continue  # a stratum read whole adds no sampling error
        if n < 2:
            return math.nan
        v = values if c is None else values[strata == c]
        w = pop / n_all
        fpc = max(0.0, 1.0 - n / pop)
        var += w * w * fpc * float(np.var(v, ddof=1)) / n
    return Z95 * math.sqrt(var)


def predictions(logits: np.ndarray) -> np.ndarray:
    """The predicted class of each row of ``logits`` ``[n, classes]``: its argmax, or -1 (no
    class: never correct) for a row with a NaN logit, where ``argmax`` would name the first NaN.

    >>> predictions(np.array([[0.0, 1.0], [np.nan, 0.0]])).tolist()
    [1, -1]
    """
    pred = logits.argmax(axis=1)
    return np.where(np.isnan(logits).any(axis=1), -1, pred) if pred.size else pred


def margin(metric: str, labels: np.ndarray, logits: np.ndarray, part: SliceKeys, *, value: float,
           seed: int = 0, n_boot: int = 200) -> float:
    """Half-width of the 95% confidence interval of ``metric`` (``value``) measured on ``part``'s keys."""
    n = labels.size
    if n == 0 or not math.isfinite(value):  # no value (or an infinite loss), no interval (not an exact one)
        return math.nan
    if part.complete:
        return 0.0
    fpc = max(0.0, 1.0 - n / max(part.population, 1))
    if metric == "accuracy":
        half = _strat_margin((predictions(logits) == labels).astype(np.float64), labels, part)
        return _wilson(value, half, n, fpc)
    if metric == "loss":
        z = logits - logits.max(axis=1, keepdims=True)
        per = -(z - np.log(np.exp(z).sum(axis=1, keepdims=True)))[np.arange(n), labels]
        return _strat_margin(per, labels, part)
    if metric == "roc_auc":
        if math.isnan(value):
            return math.nan
        if logits.shape[1] == 2:
            se2 = _auc_variance(value, int((labels == 1).sum()), n, fpc)
        else:  # macro one-vs-rest: the mean of the defined per-class AUCs, taken as independent
            scores = log_odds(logits)
            per = [(a, int((labels == c).sum())) for c in range(logits.shape[1])
                   if not math.isnan(a := _auc_binary(scores[:, c], labels == c))]
            se2 = sum(_auc_variance(a, n1, n, fpc) for a, n1 in per) / len(per) ** 2 if per else math.nan
        return Z95 * math.sqrt(max(se2, 0.0) * fpc) if not math.isnan(se2) else math.nan
    # f1: a seeded bootstrap of the macro F1 over the sample, as a Wilson interval (NaN from
    # one row, as for accuracy: a bootstrap of one row has no spread to measure)
    if n < 2:
        return math.nan
    pred = predictions(logits)
    rng = np.random.default_rng(seed)
    boots = [_f1(labels[i], pred[i]) for i in (rng.integers(0, n, n) for _ in range(n_boot))]
    half = Z95 * float(np.std(boots, ddof=1)) * math.sqrt(fpc)
    return _wilson(value, half, _smallest_class(labels), fpc)


def _smallest_class(labels: np.ndarray) -> int:
    """Rows of the class with the fewest rows in ``labels`` (macro F1 weighs every class alike:
    the class seen least bounds the evidence of a sample without an error)."""
    return int(np.unique(labels, return_counts=True)[1].min())


def _auc_variance(a: float, n1: int, n: int, fpc: float) -> float:
    """Variance of an AUC ``a`` on ``n1`` positives of ``n`` rows: Hanley & McNeil's, and where
    that is 0 (``a`` of 0 or 1: the sample ranks every pair alike) the variance of the Wilson
    score half-width of a share ``a`` measured on ``min(n1, n - n1)`` rows (its larger side), so
    that a perfect ranking of a sample is not taken for a perfect ranking of the slice."""
    se2 = _hanley_mcneil(a, n1, n)
    if math.isnan(se2) or se2 > 0 or fpc <= 0:
        return se2
    half = _wilson(a, 0.0, min(n1, n - n1), fpc)
    return (half / Z95) ** 2 / fpc


def _wilson(p: float, half: float, n: int, fpc: float) -> float:
    """Half-width for a share ``p`` from the Wilson score interval: the larger distance from ``p``
    to its bounds, with the effective sample size of the normal half-width ``half`` (``n / fpc``
    when that is 0: a sample all right or all wrong). A normal interval alone would be 0 wide
    there, and miss the slice's value whenever its few errors were not sampled."""
    if math.isnan(half) or fpc <= 0:
        return half
    var = (half / Z95) ** 2
    m = p * (1 - p) / var if var > 0 else n / fpc
    z2 = Z95 * Z95
    center = (p + z2 / (2 * m)) / (1 + z2 / m)
    rad = Z95 * math.sqrt(p * (1 - p) / m + z2 / (4 * m * m)) / (1 + z2 / m)
    return max(p - (center - rad), center + rad - p)


def _hanley_mcneil(a: float, n1: int, n: int) -> float:
    """Hanley & McNeil's variance of an AUC ``a`` measured on ``n1`` positives of ``n`` rows
    (NaN without a positive or a negative)."""
    n2 = n - n1
    if n1 == 0 or n2 == 0:
        return math.nan
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a)) / (n1 * n2)


def _f1(labels: np.ndarray, pred: np.ndarray) -> float:
    """Macro F1 over the classes present in ``labels`` or ``pred`` (as ``evaluation.f1_macro``)."""
    classes = np.union1d(labels, pred[pred >= 0])
    tp = np.array([np.sum((pred == c) & (labels == c)) for c in classes], dtype=np.float64)
    fp = np.array([np.sum((pred == c) & (labels != c)) for c in classes], dtype=np.float64)
    fn = np.array([np.sum((pred != c) & (labels == c)) for c in classes], dtype=np.float64)
    den = 2 * tp + fp + fn
    return float(np.mean(np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)))
