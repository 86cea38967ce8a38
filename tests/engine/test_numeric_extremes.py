"""Drift statistics and logit scores at the edges of float64: a far outlier next to ordinary
rows, far-apart clusters, logits spanning +-1e308. Expected values come from SciPy / plain
float64 brute force (``naive``), computed without the engine's shortcuts."""

from __future__ import annotations

import math

import naive
import numpy as np
import pytest
import scipy.spatial.distance
import scipy.special
import scipy.stats

from engine import _mmd, drift, scores


def _brute_mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.exp(-scipy.spatial.distance.cdist(a, b, "sqeuclidean") / (2.0 * sigma * sigma))

    n, m = len(x), len(y)
    return float((k(x, x).sum() - n) / (n * (n - 1)) + (k(y, y).sum() - m) / (m * (m - 1))
                 - 2.0 * k(x, y).mean())


@pytest.mark.parametrize("outlier", [1e6, 1e10, -1e15, 1e150])
def test_one_far_outlier_keeps_the_small_distances_of_the_other_rows(outlier: float) -> None:
    """The outlier moves the mean the rows are centred on, so |z_i|^2 + |z_j|^2 - 2 z_i.z_j of two
    ordinary rows cancelled to noise (and under the zero tolerance: 0, median bandwidth 1.0,
    MMD^2 ~0, p = 1). The distances, bandwidth, statistic and p-value are the brute force's."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    y = rng.normal(loc=1.0, size=(60, 2))
    y[0] = outlier
    z = np.concatenate([x, y])
    d2 = scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(z, "sqeuclidean"))
    sigma = float(np.median(scipy.spatial.distance.pdist(z)))

    got_d2, _ = _mmd.sq_distances(z, bracket=False)
    np.testing.assert_allclose(got_d2, d2, rtol=1e-13, atol=0.0)
    k, got_sigma = _mmd.pooled_kernel(z, None)
    assert got_sigma == pytest.approx(sigma, rel=1e-13)
    assert got_sigma == pytest.approx(1.82084, abs=1e-5)  # the outlier-free rows set the median
    np.testing.assert_allclose(k, np.exp(-d2 / (2.0 * sigma * sigma)), rtol=0.0, atol=1e-14)
    want = _brute_mmd2(x, y, sigma)
    assert want == pytest.approx(0.1168, abs=1e-4)
    assert drift.mmd2_unbiased(x, y) == pytest.approx(want, rel=1e-9)
    stat, p = drift.mmd_permutation_test(x, y, n_permutations=99, seed=0)
    ref_stat, ref_p = naive.mmd_permutation_test(x, y, drift.permutations(120, 60, 99, 0))
    assert stat == pytest.approx(ref_stat, rel=1e-9)
    assert p == ref_p == 0.01


def test_far_apart_clusters_keep_their_within_cluster_distances_in_the_bracketed_path() -> None:
    """Two clusters 2e9 apart: centring cannot help (every row is 1e9 from the mean); 900 rows
    take the bracketed median (>= 2^17 pairs). Every distance is the brute force's."""
    rng = np.random.default_rng(4)
    z = rng.normal(size=(900, 3))
    z[::2] += 1e9
    z[1::2] -= 1e9
    d = scipy.spatial.distance.pdist(z)
    sigma = float(np.median(d))
    got_d2, bracket = _mmd.sq_distances(z, bracket=True)
    np.testing.assert_allclose(got_d2, scipy.spatial.distance.squareform(d * d), rtol=1e-13, atol=0.0)
    assert _mmd.median_upper(got_d2, bracket) == pytest.approx(sigma, rel=1e-13)
    x, y = z[:450], z[450:]
    y = y + np.array([0.5, 0.0, 0.0])
    zz = np.concatenate([x, y])
    s = float(np.median(scipy.spatial.distance.pdist(zz)))
    assert drift.mmd2_unbiased(x, y) == pytest.approx(_brute_mmd2(x, y, s), rel=1e-9, abs=1e-15)


def _scipy_scores(kind: str, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SciPy's log-softmax (it overflows nothing: exp of -inf is 0) and ``scipy.stats.entropy``."""
    logp = scipy.special.log_softmax(z, axis=1)
    p = np.exp(logp)
    if kind == "loss":
        return -logp[np.arange(len(z)), y]
    if kind == "least_confidence":
        return 1.0 - p.max(axis=1)
    if kind == "entropy":
        return np.asarray(scipy.stats.entropy(p, axis=1))
    if kind == "margin":
        ps = -np.sort(-p, axis=1)
        return ps[:, 0] - ps[:, 1]
    return np.linalg.norm(p - np.eye(z.shape[1])[y], axis=1)


def test_logits_spanning_the_float64_range_score_like_scipy() -> None:
    """``z_j - max`` of 1e308 and -1e308 overflows to -inf: its probability is exactly 0, and
    0 log 0 = 0, so the entropy stays finite (it was 0 * -inf = NaN). The loss of a label whose
    logit is 2e308 below the largest is +inf, as in SciPy (the true value exceeds float64)."""
    big = 1e308
    top = float(np.finfo(np.float64).max)
    z = np.array([[big, -big, 0.0],
                  [big, -big, big],
                  [-big, big, big],
                  [top, -top, 1.0],
                  [-top, 3.0, 1.0],  # no overflow: an ordinary row with one vanishing class
                  [big, -big, -big]])
    y = np.array([1, 0, 0, 1, 1, 2])
    with np.errstate(over="ignore"):
        want = {k: _scipy_scores(k, z, y) for k in ("loss", "least_confidence", "entropy", "margin", "el2n")}
    np.testing.assert_array_equal(want["entropy"][:4], [0.0, math.log(2.0), math.log(2.0), 0.0])
    got = {"loss": scores.cross_entropy(z, y), "least_confidence": scores.least_confidence(z),
           "entropy": scores.entropy(z), "margin": scores.margin(z), "el2n": scores.el2n(z, y)}
    for kind, w in want.items():
        assert np.isnan(got[kind]).sum() == 0, kind
        np.testing.assert_allclose(got[kind], w, rtol=1e-14, atol=1e-300, err_msg=kind)
    assert np.isinf(got["loss"]).tolist() == [True, False, True, True, False, True]
    np.testing.assert_allclose(got["el2n"][[0, 2]], [math.sqrt(2.0), math.sqrt(1.5)], rtol=1e-15)
    # float32 logits at their own extremes never overflow in float64
    f = np.array([[3e38, -3e38]], dtype=np.float32)
    assert scores.entropy(f).tolist() == [0.0]
