"""Scores from logits against SciPy's softmax."""

from __future__ import annotations

import naive
import numpy as np
import pytest

from engine import EngineInputError, scores

KINDS = {"loss": scores.cross_entropy, "least_confidence": scores.least_confidence,
         "entropy": scores.entropy, "margin": scores.margin, "el2n": scores.el2n}
NEEDS_LABELS = {"loss", "el2n"}


def _call(kind: str, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    return KINDS[kind](z, y) if kind in NEEDS_LABELS else KINDS[kind](z)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_reference(kind: str, seed: int, dtype: type) -> None:
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(0, 300)), int(rng.integers(1, 12))
    z = (rng.normal(size=(n, c)) * 10 ** rng.uniform(-2, 2)).astype(dtype)
    if n:
        z[rng.integers(0, n, 3), rng.integers(0, c, 3)] = rng.choice([np.nan, np.inf, -np.inf], 3)
    if n > 5:
        z[5] = z[5, 0]  # a row of ties
    y = rng.integers(0, c, n)
    got = _call(kind, z, y)
    assert got.dtype == np.float64 and got.shape == (n,)
    np.testing.assert_allclose(got, naive.scores(kind, z, y), rtol=1e-9, atol=1e-12)


def test_extreme_logits_are_stable() -> None:
    z = np.array([[1000.0, -1000.0], [-1e6, 1e6]])
    np.testing.assert_allclose(scores.cross_entropy(z, [0, 0]), [0.0, 2e6])
    assert np.all(np.isfinite(scores.entropy(z)))
    np.testing.assert_allclose(scores.margin(z), [1.0, 1.0])


def test_rho_loss() -> None:
    assert scores.rho_loss([2.0, 0.5], [0.5, 0.5]).tolist() == [1.5, 0.0]
    with pytest.raises(EngineInputError, match="irreducible_loss"):
        scores.rho_loss([1.0], [1.0, 2.0])


def test_invalid_input() -> None:
    z = np.zeros((3, 2))
    with pytest.raises(EngineInputError) as err:
        scores.cross_entropy(z, [0, 2, 1])
    assert err.value.name == "labels[1]" and "[0, 2)" in str(err.value)
    with pytest.raises(EngineInputError, match="labels"):
        scores.el2n(z, None)
    with pytest.raises(EngineInputError, match="labels"):
        scores.el2n(z, [0, 1])
    with pytest.raises(EngineInputError, match="logits"):
        scores.entropy(np.zeros(3))
    with pytest.raises(EngineInputError, match="at least one class"):
        scores.entropy(np.zeros((3, 0)))
