"""Scoring passes against plain NumPy references, written back to the store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from training.models import build_model
from training.scoring import score


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _reference(store, model, keys: np.ndarray) -> dict[str, np.ndarray]:
    t = store.as_of(None).take(keys, ["x", "label"])
    x = np.array(t.column("x").to_pylist(), np.float32)
    y = np.array(t.column("label").to_pylist())
    with torch.no_grad():
        hidden = model.body(torch.from_numpy(x)).double().numpy()
        z = model(torch.from_numpy(x)).double().numpy()
    p = _softmax(z)
    onehot = np.eye(p.shape[1])[y]
    top2 = np.sort(p, axis=1)[:, ::-1]
    err = np.sqrt(((p - onehot) ** 2).sum(axis=1))
    return {
        "loss": -np.log(p[np.arange(y.size), y]),
        "least_confidence": 1 - p.max(axis=1),
        "entropy": -(p * np.log(p)).sum(axis=1),
        "margin": top2[:, 0] - top2[:, 1],
        "el2n": err,
        "gradnorm": err * np.sqrt(1.0 + (hidden**2).sum(axis=1)),
        "irreducible_loss": -np.log(p[np.arange(y.size), y]),
        "embedding": hidden,
    }


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("mlp", in_features=8, n_classes=3, hidden=[5])


def test_scores_match_reference_and_are_written(store) -> None:
    model = _mlp()
    names = ("loss", "least_confidence", "entropy", "margin", "el2n", "gradnorm", "embedding", "irreducible_loss")
    rng = np.random.default_rng(0)
    ts = TrainSet.uniform(rng.choice(store.as_of(None).keys(), 333, replace=False), version=store.version)
    out = score(store, model, inputs={"features": "x"}, train_set=ts, scores=names,
                embedding_layer="head",
                batch_size=100, training_id="t1")
    assert out.keys.tolist() == ts.keys.tolist()
    ref = _reference(store, model, out.keys)
    for n in names:
        np.testing.assert_allclose(out.values[n], ref[n], rtol=1e-5, atol=1e-6, err_msg=n)
    stored = store.scores.as_of(None, "entropy")
    got = dict(zip(stored.column("key").to_pylist(), stored.column("value").to_pylist()))
    np.testing.assert_allclose([got[int(k)] for k in out.keys], out.values["entropy"])
    assert set(stored.column("training_id").to_pylist()) == {"t1"}
    # every score of one pass commits as one store version
    (version,) = set(out.versions.values())
    assert sorted(store.log()[version - 1].details["scores"]) == sorted(names)


def test_snapshot_pass_scores_every_live_sample(store) -> None:
    store.delete(keys=[0, 1, 2])
    out = score(store, _mlp(), inputs={"features": "x"}, scores=("least_confidence",), write=False)
    assert out.keys.tolist() == store.as_of(None).keys().tolist()
    assert out.versions == {}


def test_a_train_set_with_epoch_plans_scores_every_key_once(store) -> None:
    """Plans say which keys each epoch trains on; a scoring pass scores the whole set, in its order."""
    keys = store.as_of(None).keys()[:60][::-1].copy()
    plans = (np.arange(10), np.arange(10, 60), np.array([3, 3, 4]))
    ts = TrainSet(keys, np.ones(keys.size), store.version, per_epoch=plans)
    model = _mlp()
    out = score(store, model, inputs={"features": "x"}, train_set=ts, scores=("loss",), batch_size=16)
    assert out.keys.tolist() == keys.tolist()
    np.testing.assert_allclose(out.values["loss"], _reference(store, model, keys)["loss"], rtol=1e-5, atol=1e-6)
    assert sorted(store.scores.as_of(None, "loss").column("key").to_pylist()) == sorted(keys.tolist())


def test_invalid_score_requests(store) -> None:
    with pytest.raises(InvalidArgumentError, match="scores"):
        score(store, _mlp(), inputs={"features": "x"}, scores=("nope",))
    with pytest.raises(InvalidArgumentError, match="embedding_layer"):
        score(store, _NoLinear(), inputs={"features": "x"}, scores=("embedding",))
    with pytest.raises(InvalidArgumentError, match="embedding_layer"):
        score(store, _mlp(), inputs={"features": "x"}, scores=("gradnorm",), embedding_layer="nope")


@pytest.mark.parametrize("inputs", [["x"], "x", {}, {"features": 5}])
def test_inputs_that_are_not_a_column_mapping_are_refused(store, inputs) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid inputs="):
        score(store, _mlp(), inputs=inputs, scores=("loss",), write=False)


class _NoLinear(torch.nn.Module):
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features[:, :3]


def test_embedding_layer_defaults_to_the_last_linear(store) -> None:
    ts = TrainSet.uniform(store.as_of(None).keys()[:50], version=store.version)
    model = _mlp()
    auto = score(store, model, inputs={"features": "x"}, train_set=ts, scores=("gradnorm", "embedding"), write=False)
    named = score(store, model, inputs={"features": "x"}, train_set=ts, scores=("gradnorm", "embedding"),
                  embedding_layer="head", write=False)
    for n in ("gradnorm", "embedding"):
        np.testing.assert_array_equal(auto.values[n], named.values[n])


@pytest.mark.parametrize("use_engine", [True, False])
def test_engine_and_torch_paths_agree_with_numpy(use_engine: bool) -> None:
    from training.scoring import scores_from_logits

    rng = np.random.default_rng(7)
    z = rng.normal(size=(300, 4)) * 3
    z[:5] = 0.0  # ties on purpose
    y = rng.integers(0, 4, 300)
    names = ["loss", "least_confidence", "entropy", "margin", "el2n", "gradnorm", "irreducible_loss"]
    h = rng.normal(size=(300, 6))
    got = scores_from_logits(names, torch.from_numpy(z), torch.from_numpy(y), torch.from_numpy(h),
                             use_engine=use_engine)
    p = _softmax(z)
    top2 = np.sort(p, axis=1)[:, ::-1]
    ref = {
        "loss": -np.log(p[np.arange(300), y]),
        "least_confidence": 1 - p.max(axis=1),
        "entropy": -(p * np.log(p)).sum(axis=1),
        "margin": top2[:, 0] - top2[:, 1],
        "el2n": np.sqrt(((p - np.eye(4)[y]) ** 2).sum(axis=1)),
    }
    ref["gradnorm"] = ref["el2n"] * np.sqrt(1 + (h**2).sum(axis=1))
    ref["irreducible_loss"] = ref["loss"]
    for n in names:
        np.testing.assert_allclose(got[n].numpy(), ref[n], rtol=1e-9, atol=1e-12, err_msg=n)


@pytest.mark.parametrize("row", [[-np.inf, 0.0, 1.0], [np.inf, 0.0, 1.0], [np.nan, 0.0, 1.0],
                                 [1e308, -1e308, 0.0], [-1.7e308, 1.7e308, 0.0]])
def test_torch_path_scores_non_finite_and_extreme_logits_as_the_engine(row: list[float]) -> None:
    # an -inf logit (a masked class) scores NaN in the engine's kernels, as every non-finite
    # logit does; finite logits whose spread overflows score a finite entropy there
    from training.scoring import scores_from_logits

    names = ["loss", "least_confidence", "entropy", "margin", "el2n", "gradnorm"]
    z = torch.tensor([row, [0.5, 0.0, -0.5]], dtype=torch.float64)
    y, h = torch.tensor([1, 2]), torch.ones(2, 3, dtype=torch.float64)
    engine = scores_from_logits(names, z, y, h, use_engine=True)
    torch_path = scores_from_logits(names, z, y, h, use_engine=False)
    for n in names:
        np.testing.assert_allclose(torch_path[n].numpy(), engine[n].numpy(), rtol=1e-12, atol=0,
                                   equal_nan=True, err_msg=n)
    assert np.isfinite(engine["entropy"][1].item())


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_torch_path_scores_a_non_finite_layer_input_as_the_engine(value: float) -> None:
    # finite logits, an overflowed activation in the last layer's input: gradnorm is NaN on both
    from training.scoring import scores_from_logits

    names = ["el2n", "gradnorm"]
    z = torch.tensor([[0.5, 0.0, -0.5], [0.1, 0.2, 0.3]], dtype=torch.float64)
    y, h = torch.tensor([1, 2]), torch.tensor([[1.0, value], [1.0, 2.0]], dtype=torch.float64)
    engine = scores_from_logits(names, z, y, h, use_engine=True)
    torch_path = scores_from_logits(names, z, y, h, use_engine=False)
    assert np.isnan(engine["gradnorm"][0].item()) and np.isfinite(engine["el2n"][0].item())
    for n in names:
        np.testing.assert_allclose(torch_path[n].numpy(), engine[n].numpy(), rtol=1e-12, atol=0,
                                   equal_nan=True, err_msg=n)


@pytest.mark.parametrize("use_engine", [True, False])
@pytest.mark.parametrize(("label", "names"), [(5, ["loss"]), (-1, ["el2n"]), (3, ["gradnorm", "entropy"])])
def test_a_label_outside_the_classes_is_refused_typed_on_both_paths(use_engine: bool, label: int,
                                                                    names: list[str]) -> None:
    from training.scoring import scores_from_logits

    z, h = torch.zeros(3, 3, dtype=torch.float64), torch.ones(3, 2, dtype=torch.float64)
    with pytest.raises(InvalidArgumentError) as err:
        scores_from_logits(names, z, torch.tensor([0, 1, label]), h, use_engine=use_engine)
    assert err.value.name == "labels[2]" and err.value.value == label
    assert err.value.expected == "a class in [0, 3)"


class _Head(torch.nn.Module):
    """A body and a linear head; ``after`` is applied to the head's output."""

    def __init__(self, bias: bool = True, after=None) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.body = torch.nn.Sequential(torch.nn.Linear(8, 5), torch.nn.Tanh())
        self.head = torch.nn.Linear(5, 3, bias=bias)
        self.after = after

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = self.head(self.body(features))
        return z if self.after is None else self.after(z)


def _autograd_norms(store, model, keys: np.ndarray) -> np.ndarray:
    """The norm of each sample's cross-entropy gradient w.r.t. the head's parameters."""
    t = store.as_of(None).take(keys, ["x", "label"])
    x = torch.tensor(t.column("x").to_pylist(), dtype=torch.float32)
    y = torch.tensor(t.column("label").to_pylist())
    out = []
    for i in range(keys.size):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        out.append(float(sum((p.grad.double() ** 2).sum() for p in model.head.parameters()) ** 0.5))
    return np.array(out)


def test_gradnorm_is_the_norm_of_the_last_layers_gradient(store) -> None:
    """Against autograd, for logits and for log-probabilities (same softmax) out of the head."""
    keys = store.as_of(None).keys()[:40]
    ts = TrainSet.uniform(keys, version=store.version)
    for after in (None, lambda z: torch.log_softmax(z, 1)):
        model = _Head(after=after)
        got = score(store, model, inputs={"features": "x"}, train_set=ts, scores=("gradnorm",), write=False)
        np.testing.assert_allclose(got.values["gradnorm"], _autograd_norms(store, model, keys), rtol=1e-5)


@pytest.mark.parametrize("model, what", [
    (lambda: _Head(bias=False), "without a bias"),
    (lambda: _Head(after=lambda z: z / 2.0), "changes 'head'"),
])
def test_gradnorm_refuses_a_layer_it_is_not_the_gradient_of(store, model, what) -> None:
    """A bias-free head (no bias gradient) or logits rescaled after it: the formula is not the norm."""
    before = store.version
    with pytest.raises(InvalidArgumentError, match=what) as err:
        score(store, model(), inputs={"features": "x"}, scores=("gradnorm", "loss"), training_id="g")
    assert err.value.name == "embedding_layer"
    assert store.version == before
    # scores that do not differentiate through the layer still work with it
    score(store, model(), inputs={"features": "x"}, scores=("embedding", "loss"), write=False)
