"""``DataDrift`` statistics on features at the edges of float64 (near 1e200 or 1e-200): the
column standardisation must neither overflow nor underflow."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from policies import DataDrift, TriggerInput
from policies._drift_stats import METRICS, _standardise, two_sample


def _shifted(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + np.array([10.0, 0.0])


@pytest.mark.parametrize("exp2", [660, 1000, -660, -1000])
def test_statistics_are_those_of_the_unscaled_columns(exp2: int) -> None:
    """Scaling by a power of two is exact, so every statistic equals the unscaled one, bit for
    bit (at 2^660 ~ 5e198 the reference std overflowed: all standardised values 0, p = 1; at
    2^-660 it underflowed to 0 and the columns were left unstandardised)."""
    r, c = _shifted()
    s = 2.0**exp2
    for metric in METRICS:
        assert two_sample(metric, r * s, c * s) == two_sample(metric, r, c), metric
    stat, p = two_sample("ks", r * s, c * s)
    ks = scipy.stats.ks_2samp(r[:, 0], c[:, 0])
    assert stat == pytest.approx(ks.statistic) and stat == 1.0
    assert p < 1e-40
    mean_shift, _ = two_sample("mean_shift", r * s, c * s)
    want = abs(c[:, 0].mean() - r[:, 0].mean()) / r[:, 0].std()  # float64, unscaled
    assert mean_shift == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("scale", [1e200, 1e300, 1e-200, 1e-300])
def test_standardised_values_match_a_long_double_reference(scale: float) -> None:
    r, c = _shifted(1)
    r, c = r * scale, c * scale
    got_r, got_c = _standardise(r, c)
    # reference: the unscaled columns in extended precision (x / scale is within an ulp of the draw)
    lr, lc = r.astype(np.longdouble) / np.longdouble(scale), c.astype(np.longdouble) / np.longdouble(scale)
    mu = lr.mean(axis=0)
    sd = np.sqrt(((lr - mu) ** 2).mean(axis=0))
    np.testing.assert_allclose(got_r, ((lr - mu) / sd).astype(np.float64), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(got_c, ((lc - mu) / sd).astype(np.float64), rtol=1e-12, atol=1e-13)


def test_a_constant_reference_column_keeps_its_own_units() -> None:
    """std 0: the column is only centred, ``x - mean`` in the input's units, as before."""
    r = np.full((5, 1), 3e300)
    c = np.array([[3e300], [2e300], [-1e300]])
    got_r, got_c = _standardise(r, c)
    np.testing.assert_array_equal(got_r, r - r.mean(axis=0))
    np.testing.assert_array_equal(got_c, c - r.mean(axis=0))
    np.testing.assert_allclose(got_c.ravel(), [0.0, -1e300, -4e300], rtol=1e-15, atol=1e285)


@pytest.mark.parametrize("metric, decision, threshold", [("ks", "p_value", 0.05), ("mmd", "p_value", 0.05),
                                                         ("mean_shift", "threshold", 1.0),
                                                         ("wasserstein", "threshold", 1.0)])
@pytest.mark.parametrize("scale", [1.0, 1e200, 1e-200])
def test_data_drift_sees_a_shift_of_huge_or_tiny_values(metric: str, decision: str, threshold: float,
                                                       scale: float) -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 400), rng.normal(10, 1, 400)]) * scale
    d = TriggerInput(version=1, keys=np.arange(800), ts=np.arange(800), features={"x": x})
    t = DataDrift(columns=["x"], metric=metric, decision=decision, threshold=threshold, window=100, every=100)
    assert [f.position for f in t.fire(d)] == [500]


@pytest.mark.parametrize("n", [50, 200, 300, 1000])
@pytest.mark.parametrize("value", [0.1, 0.422915, 0.414912, 2.2])
def test_a_constant_reference_column_is_flat_whatever_its_mean_rounds_to(n: int, value: float) -> None:
    """A constant reference column is compared in its own units (std taken as 1). Its mean
    computed in floating point may be an ulp off (0.422915 in 300 rows), which gave a std of
    ~1e-16: a shift of 1e-3 then read as ~1e13 standard deviations, for some window lengths only
    (Elec2's VIC columns are constant for 17,424 rows; window 300 fired, 200 and 400 did not)."""
    ref = np.full((n, 1), value)
    cur = np.full((n, 1), value + 1e-3)
    for metric in ("mean_shift", "wasserstein"):
        stat, _ = two_sample(metric, ref, cur)
        assert stat == pytest.approx(1e-3, rel=1e-6), metric
    r, c = _standardise(ref, ref.copy())
    assert np.all(r == 0.0) and np.all(c == 0.0)


def test_drift_on_a_constant_column_does_not_depend_on_the_window_length() -> None:
    x = np.concatenate([np.full(600, 0.422915), np.linspace(0.3, 0.6, 400)])
    for window in (200, 300, 400):
        t = DataDrift(columns=["x"], metric="mean_shift", decision="threshold", threshold=3.0,
                      window=window, every=100)
        assert t.fire(TriggerInput(version=1, keys=np.arange(x.size), ts=np.arange(x.size),
                                   features={"x": x})) == [], window
