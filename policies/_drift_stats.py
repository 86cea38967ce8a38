"""Two-sample drift statistics over feature matrices, on top of ``engine.drift``.

Columns are standardised with the reference window's mean and standard deviation first, so
columns of different scales weigh alike. Multivariate rules:

- ``mmd``: squared MMD with an RBF kernel (median heuristic) and a permutation p-value.
- ``ks``: the largest per-column KS statistic; p-value = min per-column p-value x columns
  (Bonferroni).
- ``wasserstein``: the mean per-column Wasserstein-1 distance (no p-value).
- ``mean_shift``: the largest per-column absolute difference of means, in reference standard
  deviations (no p-value).
"""

from __future__ import annotations

import numpy as np

from modyn_store.core.errors import InvalidArgumentError

__all__ = ["METRICS", "P_VALUE_METRICS", "two_sample"]

METRICS = ("mmd", "ks", "wasserstein", "mean_shift")
P_VALUE_METRICS = ("mmd", "ks")


def _standardise(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x - mean) / std`` per column, with the reference's mean and std; a constant reference
    column (all values equal, whatever its computed mean and std round to) keeps its own units:
    ``x - value``.

    Each column is first scaled by the power of two that brings the reference's largest magnitude
    into [0.5, 1): the sums of squares can then neither overflow (values near 1e200 made the std
    inf and every standardised value 0) nor underflow (near 1e-200: std 0), and as scaling by a
    power of two is exact, the result is the unscaled computation's, bit for bit, elsewhere."""
    big = np.abs(ref).max(axis=0, initial=0.0)
    _, e = np.frexp(np.where(np.isfinite(big), big, 0.0))
    ref = np.ldexp(ref, -e)
    cur = np.ldexp(cur, -e)
    mu = ref.mean(axis=0)
    sd = ref.std(axis=0)
    # a constant column is flat however its mean rounds: a mean an ulp off its value gives a
    # std of ~1e-16 (0.422915 in 300 rows), which would read a shift of 1e-3 as 1e13 stds
    flat = ~(sd > 0) | (ref.max(axis=0, initial=-np.inf) == ref.min(axis=0, initial=np.inf))
    if ref.shape[0]:
        mu[flat] = ref[0, flat]
    sd[flat] = 1.0
    ref, cur = (ref - mu) / sd, (cur - mu) / sd
    if flat.any():  # a constant reference column: (x - mean) / 1 in the column's own units
        ref[:, flat] = np.ldexp(ref[:, flat], e[flat])
        cur[:, flat] = np.ldexp(cur[:, flat], e[flat])
    return ref, cur


def two_sample(metric: str, ref: np.ndarray, cur: np.ndarray, *, n_permutations: int = 200,
               seed: int = 0) -> tuple[float, float | None]:
    """``(statistic, p_value or None)`` of ``metric`` between two ``[n, d]`` float matrices.

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> stat, p = two_sample("ks", rng.normal(size=(200, 2)), rng.normal(2, 1, size=(200, 2)))
    >>> stat > 0.5 and p < 1e-6
    True
    """
    from engine import drift

    ref = np.asarray(ref, dtype=np.float64)
    cur = np.asarray(cur, dtype=np.float64)
    ref, cur = _standardise(ref, cur)
    d = ref.shape[1]
    if metric == "mmd":
        stat, p = drift.mmd_permutation_test(ref, cur, n_permutations=n_permutations, seed=seed)
        return float(stat), float(p)
    if metric == "ks":
        res = [drift.ks_2samp(ref[:, j], cur[:, j]) for j in range(d)]
        stat = max(float(r[0]) for r in res)
        p = min(1.0, min(float(r[1]) for r in res) * d)
        return stat, p
    if metric == "wasserstein":
        return float(np.mean([drift.wasserstein_1d(ref[:, j], cur[:, j]) for j in range(d)])), None
    if metric == "mean_shift":
        return float(np.max(np.abs(cur.mean(axis=0) - ref.mean(axis=0)))), None
    raise InvalidArgumentError("metric", metric, f"one of {list(METRICS)}")
