"""A sample on which the model makes no error is not proof of a perfect model: the 95%
half-widths of F1 and ROC-AUC on it are not 0 (only a sample that is the whole slice is)."""

from __future__ import annotations

import numpy as np

from training.eval_sample import Z95, SliceKeys, margin
from training.evaluation import _metrics


def _perfect(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    y = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
    z = np.zeros((y.size, len(counts)))
    z[np.arange(y.size), y] = 5.0
    return y, z


def _wilson_one(m: float) -> float:
    """Half-width (lower side) of the Wilson score interval of a share of 1 measured on ``m`` rows."""
    return Z95 * Z95 / (m + Z95 * Z95)


def test_perfect_binary_sample_has_f1_and_auc_widths() -> None:
    y, z = _perfect([30, 70])
    part = SliceKeys(np.arange(y.size), 100_000)
    fpc = 1 - y.size / 100_000
    f1, auc = _metrics(("f1", "roc_auc"), y, z)
    assert f1 == 1.0 and auc == 1.0
    # Wilson on the smallest class (30 rows), finite-population corrected as for accuracy
    assert np.isclose(margin("f1", y, z, part, value=f1), _wilson_one(30 / fpc))
    assert np.isclose(margin("roc_auc", y, z, part, value=auc), _wilson_one(30 / fpc))


def test_perfect_multiclass_sample_has_widths_and_a_small_class_widens_them() -> None:
    part = SliceKeys(np.arange(100), 100_000)
    y, z = _perfect([40, 40, 20])
    f1 = margin("f1", y, z, part, value=1.0)
    auc = margin("roc_auc", y, z, part, value=1.0)
    yb, zb = _perfect([34, 33, 33])
    assert f1 > margin("f1", yb, zb, part, value=1.0) > 0
    assert auc > margin("roc_auc", yb, zb, part, value=1.0) > 0


def test_perfect_sample_covering_the_slice_is_exact() -> None:
    y, z = _perfect([30, 70])
    part = SliceKeys(np.arange(y.size), y.size)
    assert margin("f1", y, z, part, value=1.0) == 0.0
    assert margin("roc_auc", y, z, part, value=1.0) == 0.0


def test_a_few_unsampled_errors_are_covered() -> None:
    # a slice with 1% errors in its smaller class; most samples of 100 rows see none of them
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(3000, np.int64), np.ones(7000, np.int64)]
    z = np.zeros((y.size, 2))
    z[np.arange(y.size), y] = 5.0
    wrong = rng.choice(3000, 30, replace=False)
    z[wrong] = [0.0, 5.0]
    true_f1, true_auc = _metrics(("f1", "roc_auc"), y, z)
    part = SliceKeys(np.arange(100), y.size)
    hits_f1 = hits_auc = 0
    for _ in range(100):
        i = rng.choice(y.size, 100, replace=False)
        f1, auc = _metrics(("f1", "roc_auc"), y[i], z[i])
        hits_f1 += abs(f1 - true_f1) <= margin("f1", y[i], z[i], part, value=f1)
        hits_auc += abs(auc - true_auc) <= margin("roc_auc", y[i], z[i], part, value=auc)
    assert hits_f1 >= 90 and hits_auc >= 90, (hits_f1, hits_auc)



def test_f1_margin_from_one_sampled_row_is_undefined() -> None:
    # like accuracy's: one row is no evidence of a spread (the old bootstrap said 0)
    y, z = _perfect([1])
    assert np.isnan(margin("f1", y, z, SliceKeys(np.arange(1), 100), value=1.0))
