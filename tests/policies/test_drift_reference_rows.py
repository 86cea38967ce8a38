"""Rows a drift evaluation can use: a reference that could never be compared is not kept (the
next full window is taken), and missing values are left out before subsampling.

The reference is the first full window; a window of fewer than ``min_samples`` rows without a
missing value is never evaluated, so such a reference would leave the trigger silent forever
(it is replaced only on a firing, which needs an evaluation).
"""

from __future__ import annotations

import numpy as np

from policies import DataDrift, TriggerInput


def _positions(t: DataDrift, x: np.ndarray, ts: np.ndarray) -> list[int]:
    d = TriggerInput(version=1, keys=np.arange(x.size), ts=ts, features={"x": x})
    return [f.position for f in t.fire(d)]


def test_a_sparse_first_time_window_is_not_the_reference() -> None:
    # event times 0, 10, then one row per time unit from 20: the first 5-unit window holds the
    # single row at 0, the next one the single row at 10; the first one of >= 4 rows is 20..24
    ts = np.concatenate([[0, 10], np.arange(20, 60)]).astype(np.int64)
    x = np.where(ts >= 40, 10.0, 0.0) + np.tile([0.0, 0.1, -0.1, 0.2], 11)[: ts.size]
    t = DataDrift(columns=["x"], metric="mean_shift", decision="threshold", threshold=3.0,
                  window_time=5, every=5, min_samples=4)
    fired = _positions(t, x, ts)
    assert fired and ts[fired[0] - 1] >= 40  # the step at event time 40 is detected
    assert t.n_evaluations > 0


def test_a_first_window_of_missing_values_is_not_the_reference() -> None:
    # the first 10 rows are NaN (no usable row): rows 10..19 are the reference and the step at
    # row 30 fires at the first evaluation that sees it (every=10: at row 40)
    x = np.concatenate([np.full(10, np.nan), np.zeros(20), np.full(20, 5.0)])
    x[10:30] += np.tile([0.0, 0.1, -0.1, 0.2, -0.2], 4)
    t = DataDrift(columns=["x"], metric="mean_shift", decision="threshold", threshold=3.0,
                  window=10, every=10, min_samples=10)
    assert _positions(t, x, np.arange(x.size)) == [40]


def test_a_usable_first_window_is_still_the_reference() -> None:
    # the usual case is unchanged: rows 0..9 are the reference, the step at row 20 fires at 30
    x = np.concatenate([np.zeros(20), np.full(20, 5.0)]) + np.tile([0.0, 0.1, -0.1, 0.2], 10)
    t = DataDrift(columns=["x"], metric="mean_shift", decision="threshold", threshold=3.0,
                  window=10, every=10, min_samples=10)
    assert _positions(t, x, np.arange(x.size)) == [30]


def test_missing_values_are_left_out_before_subsampling() -> None:
    # every other row is missing: each window of 40 rows holds 20 usable ones, more than
    # min_samples = max_samples = 10. Subsampled first, about half of the 10 rows drawn were
    # missing and no window was ever evaluated; the step at row 80 must fire at 120.
    x = np.concatenate([np.zeros(80), np.full(80, 10.0)]) + np.tile([0.0, 0.1, -0.1, 0.2], 40)
    x[::2] = np.nan
    t = DataDrift(columns=["x"], metric="mean_shift", decision="threshold", threshold=3.0,
                  window=40, every=40, min_samples=10, max_samples=10)
    assert _positions(t, x, np.arange(x.size)) == [120]
    assert t.n_evaluations == 3
