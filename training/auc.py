"""ROC-AUC of model outputs: rank-based, ties averaged, rows ranked by float64 log-odds.

:func:`roc_auc` is binary on ``p[:, 1]`` or macro one-vs-rest over the classes with both
positives and negatives (NaN when undefined or when a score is NaN). :func:`log_odds` gives
scores that rank rows as the softmax probabilities do, without the ties that rounding confident
probabilities to 1.0 makes. Used by :mod:`training.evaluation` (the metric) and
:mod:`training.eval_sample` (its confidence interval).

Example
-------
>>> import numpy as np
>>> logits = np.array([[0.0, 30.0], [0.0, 20.0], [0.0, 25.0], [0.0, 18.0]], np.float32)
>>> roc_auc(np.array([1, 1, 0, 0]), log_odds(logits))
0.75
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["log_odds", "roc_auc"]


def _auc_binary(pos_scores: np.ndarray, positive: np.ndarray) -> float:
    """The Mann-Whitney AUC of ``pos_scores`` for the rows where ``positive`` holds: over every
    (positive, negative) pair, 1 where the positive scores higher and 1/2 for a tie (the rank-sum
    statistic with ties given their average rank). Counted without ranking every row: the
    negatives' scores are sorted once and each positive's count of lower and equal negatives
    found by binary search (sorted positives: a sequential walk through memory). The doubled
    count is an exact integer, so the value is the correctly rounded ratio at any number of rows."""
    n_pos = int(np.count_nonzero(positive))
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0 or np.isnan(pos_scores).any():
        return math.nan  # a NaN score has no rank
    neg = np.sort(pos_scores[~positive])
    pos = np.sort(pos_scores[positive])
    # below + (below or equal): 2 per lower negative, 1 per tied one
    twice_wins = (int(np.searchsorted(neg, pos, side="left").sum())
                  + int(np.searchsorted(neg, pos, side="right").sum()))
    return twice_wins / (2 * n_pos * n_neg)


def roc_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """ROC-AUC: binary of ``probs[:, 1]``; else macro one-vs-rest (NaN when undefined, e.g.
    a NaN probability). Any scores that rank rows as the probabilities do (per class) give the
    same value, e.g. :func:`log_odds` of the logits."""
    if labels.size == 0:
        return math.nan
    if probs.shape[1] == 2:
        return _auc_binary(probs[:, 1], labels == 1)
    aucs = [_auc_binary(probs[:, c], labels == c) for c in range(probs.shape[1])]
    aucs = [a for a in aucs if not math.isnan(a)]
    return float(np.mean(aucs)) if aucs else math.nan


def log_odds(logits: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))`` of every class's softmax probability ``p``, in float64: it ranks
    rows as ``p[:, c]`` does, without the ties that rounding ``p`` makes of confident rows
    (``p`` is exactly 1.0 beyond a logit gap of about 17 in float32, 37 in float64), which
    would count a confidently wrong row as tied with the right ones in ROC-AUC; nor does ``p``
    near 1/2 (two classes 1e-30 apart, a tie for the largest logit) round them to 0.

    >>> log_odds(np.array([[0.0, 20.0], [0.0, 30.0]], np.float32))[:, 1].tolist()
    [20.0, 30.0]
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.size == 0 or z.shape[1] < 2:
        return np.zeros(z.shape)
    # computed the same way for rows that are equal up to a shift or a permutation of their
    # logits, so that rows with equal probabilities get equal scores (ties stay ties); with the
    # row's largest logit m held by t classes and e = exp(z - m):
    #   a largest class:  log-odds = -log(sum of e over the others) = -log((t - 1) + r)
    #   any other class:  log-odds = (z - m) - log(t + r - e)
    # (r: the sum of e below m), so that near p = 1/2 (a tie for the largest logit, or two
    # classes) the score keeps its sign and size instead of rounding to 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        bad = ~np.isfinite(z.max(axis=1)) | np.isnan(z).any(axis=1)  # NaN or +inf: no probabilities
        m = np.where(bad, 0.0, z.max(axis=1))[:, None]
        d = z - m
        top = d == 0.0
        t = top.sum(axis=1, keepdims=True).astype(np.float64)
        e = np.exp(d)
        below = np.sort(np.where(top, 0.0, e), axis=1)  # ascending: the same sum for any order
        r = below.sum(axis=1, keepdims=True)
        srt = np.sort(d, axis=1)
        # one largest class: the log of the others' sum in log space (no underflow of e)
        rest = np.logaddexp.reduce(srt[:, :-1], axis=1)[:, None]
        out = d - np.log(t + np.maximum(r - e, 0.0))
        lead = np.where(t == 1.0, -rest, -np.log1p((t - 2.0) + r))
        out = np.where(top, lead, out)
        out[bad] = np.nan
    return out
