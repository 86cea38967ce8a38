"""The score registry: every kernel against a NumPy reference, lookups and missing inputs."""

from __future__ import annotations

import naive
import numpy as np
import pytest

from engine import EngineInputError, score_registry


def _reference(name: str, z: np.ndarray, y: np.ndarray, h: np.ndarray) -> np.ndarray:
    if name in ("loss", "irreducible_loss"):
        return naive.scores("loss", z, y)
    if name == "gradnorm":  # |dL/dW|_F and |dL/db| of z = W h + b, from the outer product
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = p - np.eye(z.shape[1])[y]
        return np.array([np.sqrt(np.sum(np.outer(g[i], h[i]) ** 2) + np.sum(g[i] ** 2))
                         for i in range(z.shape[0])])
    if name == "embedding":
        return h
    return naive.scores(name, z, y)


@pytest.mark.parametrize("name", sorted(set(score_registry.SCORES) - {"rho_loss"}))
@pytest.mark.parametrize("seed", range(3))
def test_kernels_match_reference(name: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, c, d = int(rng.integers(1, 200)), int(rng.integers(2, 9)), int(rng.integers(1, 6))
    z, y, h = rng.normal(size=(n, c)) * 3, rng.integers(0, c, n), rng.normal(size=(n, d))
    spec = score_registry.get(name)
    got = score_registry.compute(name, logits=z, labels=y, hidden=h)
    assert got.shape == ((n,) if spec.shape == "scalar" else (n, d))
    np.testing.assert_allclose(got, _reference(name, z, y, h), rtol=1e-9, atol=1e-12)


def test_rho_loss_is_loss_minus_irreducible() -> None:
    got = score_registry.compute("rho_loss", loss=[2.0, 1.0], irreducible_loss=[0.5, 1.5])
    assert got.tolist() == [1.5, -0.5]


def test_gradnorm_equals_autograd_of_a_linear_layer() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    layer = torch.nn.Linear(5, 3)
    h = torch.randn(7, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (7,))
    want = []
    for i in range(7):
        layer.zero_grad()
        z = layer(h[i:i + 1].float())
        torch.nn.functional.cross_entropy(z, y[i:i + 1]).backward()
        want.append(float(torch.sqrt(layer.weight.grad.pow(2).sum() + layer.bias.grad.pow(2).sum())))
    with torch.no_grad():
        z = layer(h.float()).double().numpy()
    got = score_registry.compute("gradnorm", logits=z, labels=y.numpy(), hidden=h.numpy())
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_unknown_name_and_missing_input_name_the_problem() -> None:
    with pytest.raises(EngineInputError) as err:
        score_registry.get("grad_norm_bound")
    assert err.value.name == "score" and "gradnorm" in err.value.expected
    with pytest.raises(EngineInputError) as err:
        score_registry.compute("gradnorm", logits=np.zeros((2, 2)), labels=[0, 1])
    assert err.value.name == "hidden"


def test_every_spec_is_consistent() -> None:
    assert score_registry.names() == tuple(sorted(score_registry.SCORES))
    for name, spec in score_registry.SCORES.items():
        assert spec.name == name and spec.shape in ("scalar", "vector")
        assert set(spec.inputs) <= set(score_registry.INPUTS) and spec.definition
        assert (spec.largest is None) == (spec.shape == "vector")
    assert "loss" in score_registry.names(computed_by=score_registry.MODEL_PASS)
