"""The rolling-average comparison of ``performance`` and ``data_drift`` (``policies._mean_gap``):
decimals at the boundary, float64 away from it, and non-finite numbers as float64 has them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from policies import DataDrift, TriggerInput
from policies._mean_gap import above_mean


@pytest.mark.parametrize(("value", "past", "offset", "sign"), [
    (0.6, [0.9], -0.3, 0), (0.8, [0.7], 0.1, 0), (5e-324, [0.0], 0.0, 1), (-5e-324, [0.0], 0.0, -1),
    (1.7e308, [-1.7e308], 0.0, 1), (1.0, [1e308, 1e308], 0.0, -1), (1.0, [math.inf], 0.0, -1),
    (math.nan, [1.0], 0.0, 0), (1.0, [1.0], math.nan, 0), (1.0, [math.nan], 0.0, 0),
    (1.0, [0.5, math.nan], -0.1, 0), (np.float32(0.6), [0.9], -0.3, 1)])
def test_the_sign_of_the_gap(value: float, past: list[float], offset: float, sign: int) -> None:
    assert above_mean(value, past, offset) == sign


def test_a_drift_state_with_a_nan_past_statistic_is_compared_as_float64_compares_it() -> None:
    """A NaN among the past statistics (a JSON state holds one as ``NaN``) makes the mean NaN:
    no firing, as ``stat > nan`` gives, and no error from the exact comparison."""
    def make() -> DataDrift:
        return DataDrift(columns=["x"], metric="mean_shift", decision="rolling_average", threshold=0.1,
                         window=10, every=10, min_samples=10, max_samples=10)

    saved = make().state()
    assert saved is not None
    state = json.loads(json.dumps({**saved, "past": [math.nan]}))
    t = make()
    t.load_state(state)
    rng = np.random.default_rng(0)
    for v in range(1, 5):
        keys = np.arange((v - 1) * 10, v * 10, dtype=np.int64)
        assert t.fire(TriggerInput(version=v, keys=keys, ts=keys.astype(np.float64),
                                   features={"x": rng.normal(size=10) + 5.0 * v})) == []
