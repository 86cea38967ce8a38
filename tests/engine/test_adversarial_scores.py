"""Score kernels on logits where a naive log-sum-exp loses the answer: huge magnitudes and
confident rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import scores


def _reference(z: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Plain float64 NumPy with Python's ``math.log1p`` / ``math.expm1`` per row."""
    out: dict[str, list[float]] = {k: [] for k in ("loss", "lc", "entropy", "margin", "el2n")}
    for row, label in zip(z.astype(np.float64), y):
        order = np.argsort(-row, kind="stable")
        mx = row[order[0]]
        rest = sum(math.exp(v - mx) for j, v in enumerate(row) if j != order[0])
        log_s = math.log1p(rest)
        lp = (row - mx) - log_s
        p = np.exp(lp)
        out["loss"].append(-lp[label])
        out["lc"].append(rest / (1.0 + rest))
        out["entropy"].append(float(-(p * lp).sum()))
        gap = row[order[1]] - mx if row.size > 1 else -math.inf
        out["margin"].append((1.0 - math.exp(gap)) / (1.0 + rest))
        d = p.copy()
        d[label] = -rest / (1.0 + rest) if row[label] == mx else p[label] - 1.0
        out["el2n"].append(float(np.sqrt((d * d).sum())))
    return {k: np.array(v) for k, v in out.items()}


def _engine(z: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    return {"loss": scores.cross_entropy(z, y), "lc": scores.least_confidence(z),
            "entropy": scores.entropy(z), "margin": scores.margin(z), "el2n": scores.el2n(z, y)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_keep_probabilities_that_sum_to_one(dtype: type) -> None:
    z: np.ndarray = np.array([[1e30, 1e30], [-7e29, -7e29], [3e29, -1e29], [2e4, 2e4 - 1.0]], dtype=dtype)
    y = np.array([1, 0, 0, 1])
    got = _engine(z, y)
    assert np.allclose(got["loss"][:2], math.log(2.0), rtol=1e-12)
    assert np.allclose(got["entropy"][:2], math.log(2.0), rtol=1e-12)
    assert np.allclose(got["el2n"][:2], math.sqrt(0.5), rtol=1e-12)
    want = _reference(z, y)
    for name in want:
        assert np.allclose(got[name], want[name], rtol=1e-12, atol=0.0), name


def test_confident_rows_keep_their_small_scores() -> None:
    # 1 - 1/s and log(s) round a rest below 1e-16 to 0: every confident row would tie at 0
    rows = [np.array(r) for r in ([0.0, -40.0], [0.0, -45.0], [0.0, -50.0, -60.0], [0.0, -30.0])]
    for row, label in zip(rows, [0, 0, 0, 0]):
        got = _engine(row[None, :], np.array([label]))
        want = _reference(row[None, :], np.array([label]))
        for name in ("loss", "lc", "el2n", "entropy"):
            assert got[name][0] > 0.0, name
            assert math.isclose(got[name][0], want[name][0], rel_tol=1e-12), (name, row)
    losses = scores.cross_entropy(np.array([[0.0, -40.0], [0.0, -45.0]]), np.array([0, 0]))
    assert losses[0] > losses[1]  # still ordered, so top-k and sampling can tell them apart


def test_random_logits_match_the_reference() -> None:
    rng = np.random.default_rng(7)
    for c in (1, 2, 5):
        z = rng.standard_normal((300, c)) * rng.choice([1.0, 40.0, 1e6], (300, 1))
        z[::5, 0] = z[::5, -1]  # ties at the largest logit
        y = rng.integers(0, c, 300)
        got, want = _engine(z, y), _reference(z, y)
        for name in want:
            assert np.allclose(got[name], want[name], rtol=1e-9, atol=1e-300), (name, c)


def test_gradnorm_of_a_huge_finite_hidden_is_finite_and_of_a_non_finite_one_nan() -> None:
    from engine import score_registry as reg

    z = np.zeros((4, 2))
    h = np.array([[1e200, 1e200], [np.inf, 0.0], [np.nan, 1.0], [3.0, 4.0]])
    got = reg.compute("gradnorm", logits=z, labels=[0, 0, 0, 0], hidden=h)
    err = math.sqrt(0.5)  # |p - onehot(0)| for p = (1/2, 1/2)
    assert math.isclose(got[0], err * math.sqrt(2.0) * 1e200, rel_tol=1e-12)
    assert np.isnan(got[1]) and np.isnan(got[2])
    assert math.isclose(got[3], err * math.sqrt(26.0), rel_tol=1e-12)


def test_margin_of_a_tie_is_positive_zero() -> None:
    m = scores.margin(np.array([[1.0, 1.0, -2.0], [3.0, 0.0, 3.0]]))
    assert all(v == 0.0 and math.copysign(1.0, v) == 1.0 for v in m.tolist())
