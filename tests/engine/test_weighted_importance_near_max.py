"""Importance weights ``sum(w) / (n w_i)`` for weights near the float64 maximum.

``n * w_i`` overflows to inf for such a weight even when ``sum(w)`` is finite (the importance
weight silently came out 0.0), and two chunks whose finite sums add up past the float64 range
made the streaming sampler raise for weights the one-shot call accepts.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from engine import WeightedSampler, weighted_sample


def _exact(w: np.ndarray, idx: np.ndarray) -> list[float]:
    total = sum(Fraction(float(x)) for x in w)
    return [float(total / (w.size * Fraction(float(w[i])))) for i in idx]


def test_one_shot_weight_near_max() -> None:
    w = np.array([0.0, 1e308])
    idx, iw = weighted_sample(w, 1, seed=0, return_importance=True)
    assert idx.tolist() == [1]
    assert iw.tolist() == [0.5]
    w = np.array([1.0, 1.0, 1.7e308, 3.0])
    idx, iw = weighted_sample(w, 4, seed=0, return_importance=True)
    np.testing.assert_allclose(iw, _exact(w, idx), rtol=1e-15)


def test_streaming_chunk_sums_overflow_together() -> None:
    w = np.array([1e308, 1.0, 1e308, 0.0, 6e307])
    idx, iw = weighted_sample(w, 3, seed=1, return_importance=True)
    s = WeightedSampler(3, seed=1)
    for chunk in (w[:2], w[2:4], w[4:]):  # each chunk's sum is finite; their total is not
        s.update(chunk)
    keys, iw_stream = s.result(return_importance=True)
    assert keys.tolist() == idx.tolist()
    np.testing.assert_allclose(iw_stream, iw, rtol=1e-14)
    np.testing.assert_allclose(iw, _exact(w, idx), rtol=1e-14)


def test_plain_sums_unchanged() -> None:
    # finite n * w: the plain formula, bit for bit
    w = np.array([0.5, 2.0, 0.0, 7.25, 1e-3])
    idx, iw = weighted_sample(w, 3, seed=4, return_importance=True)
    assert iw.tolist() == [w.sum() / (w.size * w[i]) for i in idx]
