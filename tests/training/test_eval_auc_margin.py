"""The 95% half-width of a sampled multi-class (macro one-vs-rest) ROC-AUC covers the slice's
value about 95% of the time, also when the classes are imbalanced."""

from __future__ import annotations

import numpy as np

from training.eval_sample import SliceKeys, margin
from training.evaluation import log_odds, roc_auc


def _coverage(counts: list[int], n: int, reps: int, seed: int) -> tuple[float, float, float]:
    """Share of ``reps`` seeded samples of ``n`` rows whose interval holds the slice's ROC-AUC,
    with the empirical and the mean reported half-widths."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
    z = rng.standard_normal((y.size, len(counts)))
    z[np.arange(y.size), y] += 1.0
    true = roc_auc(y, log_odds(z))
    part = SliceKeys(np.arange(n), y.size)
    hits, vals, half = 0, [], []
    for _ in range(reps):
        i = rng.choice(y.size, n, replace=False)
        v = roc_auc(y[i], log_odds(z[i]))
        m = margin("roc_auc", y[i], z[i], part, value=v)
        hits += abs(v - true) <= m
        vals.append(v)
        half.append(m)
    return hits / reps, 1.96 * float(np.std(vals)), float(np.mean(half))


def test_imbalanced_multiclass_auc_interval_covers() -> None:
    # one class of 97% and four of 1%: the rare classes' AUCs vary most (a few positives each)
    cover, emp, rep = _coverage([4800, 50, 50, 50, 50], 300, 150, seed=0)
    assert cover >= 0.85, (cover, emp, rep)
    assert rep >= 0.75 * emp, (emp, rep)


def test_balanced_multiclass_auc_interval_is_not_far_too_wide() -> None:
    cover, emp, rep = _coverage([500] * 10, 200, 60, seed=1)
    assert cover >= 0.85 and rep <= 1.5 * emp, (cover, emp, rep)
