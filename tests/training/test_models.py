"""The small models: shapes, plain references, hashing and registry errors."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
import torch

from modyn_store.core.errors import InvalidArgumentError, InvalidNameError
from training.models import DLRM, MODELS, TextBag, build_model, hash_tokens

B = 5
PARAMS: dict[str, dict[str, Any]] = {
    "logreg": {"in_features": 7, "n_classes": 3},
    "mlp": {"in_features": 7, "n_classes": 3, "hidden": [16, 8], "dropout": 0.1},
    "dlrm": {"n_dense": 4, "cardinalities": [10, 20, 30], "embedding_dim": 6, "bottom": [8], "top": [12], "n_classes": 2},
    "text_bag": {"n_buckets": 64, "n_classes": 4, "embedding_dim": 5, "hidden": [6]},
}


def _inputs(name: str, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    if name in ("logreg", "mlp"):
        return (torch.randn(B, 7, generator=gen),)
    if name == "dlrm":
        return torch.randn(B, 4, generator=gen), torch.randint(0, 2**40, (B, 3), generator=gen)
    tokens, offsets = hash_tokens(["a b c", "", "b", "dd ee ff gg", "a"], n_buckets=64)
    return torch.from_numpy(tokens), torch.from_numpy(offsets)


def test_registry_covers_every_model() -> None:
    assert sorted(MODELS) == sorted(PARAMS)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_forward_shape_and_backward(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, **PARAMS[name])
    assert len(model.inputs) == len(_inputs(name, torch.Generator().manual_seed(1)))
    out = model(*_inputs(name, torch.Generator().manual_seed(1)))
    assert out.shape == (B, PARAMS[name]["n_classes"])
    assert torch.isfinite(out).all()
    out.logsumexp(dim=1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    for key, value in PARAMS[name].items():  # parameters are kept as attributes
        if key != "dropout":
            assert getattr(model, key) == (tuple(value) if isinstance(value, list) else value)


def test_same_seed_same_weights() -> None:
    torch.manual_seed(3)
    a = build_model("dlrm", **PARAMS["dlrm"])
    torch.manual_seed(3)
    b = build_model("dlrm", **PARAMS["dlrm"])
    for pa_, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa_, pb)


def test_logreg_is_affine() -> None:
    model = build_model("logreg", in_features=3, n_classes=2)
    x = torch.randn(4, 3)
    ref = x @ model.linear.weight.T + model.linear.bias
    assert torch.allclose(model(x), ref)


def test_dlrm_hashes_ids_modulo_table_size_and_matches_reference() -> None:
    torch.manual_seed(0)
    model = DLRM(n_dense=2, cardinalities=[5, 7], embedding_dim=3, bottom=[4], top=[4])
    dense = torch.randn(3, 2)
    ids = torch.tensor([[1, 2], [3, 4], [0, 6]])
    shifted = ids + torch.tensor([5, 7]) * 1000
    assert torch.allclose(model(dense, ids), model(dense, shifted))
    # plain reference of the interaction
    x = model.bottom_mlp(torch.log1p(dense.clamp_min(0)))
    e0 = model.embeddings[0].weight[ids[:, 0]]
    e1 = model.embeddings[1].weight[ids[:, 1]]
    inter = torch.stack([(x * e0).sum(1), (x * e1).sum(1), (e0 * e1).sum(1)], dim=1)
    ref = model.top_mlp(torch.cat([x, inter], dim=1))
    assert torch.allclose(model(dense, ids), ref, atol=1e-6)
    raw = DLRM(n_dense=2, cardinalities=[5, 7], embedding_dim=3, bottom=[4], top=[4], log_dense=False)
    raw.load_state_dict(model.state_dict())
    counts = torch.tensor([[0, 3], [10, 1], [2, 2]])
    assert torch.allclose(model(counts, ids), raw(torch.log1p(counts.float()), ids), atol=1e-6)


def test_text_bag_is_mean_of_token_embeddings() -> None:
    torch.manual_seed(0)
    model = TextBag(n_buckets=32, n_classes=2, embedding_dim=4)
    tokens, offsets = hash_tokens(["x y y", "z"], n_buckets=32)
    out = model(torch.from_numpy(tokens), torch.from_numpy(offsets))
    w = model.embedding.weight
    bag0 = w[torch.from_numpy(tokens[:3])].mean(0)
    bag1 = w[torch.from_numpy(tokens[3:])].mean(0)
    assert torch.allclose(out, model.head(torch.stack([bag0, bag1])), atol=1e-6)


def test_hash_tokens_reference() -> None:
    texts = ["Crude OIL, crude!", "", "oil prices"]
    tokens, offsets = hash_tokens(texts, n_buckets=1000, ngrams=2)

    def h(s: str) -> int:
        return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") % 1000

    expected = [h(t) for t in ["crude", "oil", "crude", "crude oil", "oil crude"]]
    expected += [h(t) for t in ["oil", "prices", "oil prices"]]
    assert tokens.dtype == np.int64 and offsets.dtype == np.int64
    assert tokens.tolist() == expected
    assert offsets.tolist() == [0, 5, 5]
    again, _ = hash_tokens(texts, n_buckets=1000, ngrams=2)
    assert np.array_equal(tokens, again)
    capped, _ = hash_tokens(texts, n_buckets=1000, ngrams=2, max_tokens=2)
    assert capped.tolist() == expected[:2] + expected[5:7]


def test_dlrm_and_mlp_consume_loader_tables() -> None:
    import pyarrow as pa

    from modyn_store.app.datasets.synthetic import synthetic_clicks

    batch = next(iter(synthetic_clicks(n_rows=64, n_days=1, block_rows=64)))
    dense = torch.from_numpy(np.stack([batch.column(f"i{k}").to_numpy() for k in range(1, 14)], axis=1))
    sparse = torch.from_numpy(np.stack([batch.column(f"c{k}").to_numpy() for k in range(1, 27)], axis=1))
    model = build_model("dlrm", n_dense=13, cardinalities=[1000] * 26, embedding_dim=4)
    assert model(dense, sparse).shape == (64, 2)
    table = pa.table({"features": pa.FixedSizeListArray.from_arrays(pa.array(np.ones(12, np.float32)), 3)})
    feats = torch.from_numpy(np.stack(table.column("features").to_numpy(zero_copy_only=False)))
    assert build_model("mlp", in_features=3)(feats).shape == (4, 2)


def test_build_model_errors_name_the_problem() -> None:
    with pytest.raises(InvalidNameError, match="'logreg'"):
        build_model("resnet")
    with pytest.raises(InvalidArgumentError, match="hiden.*hidden"):
        build_model("mlp", in_features=3, hiden=[4])
    with pytest.raises(InvalidArgumentError, match="in_features"):
        build_model("mlp")
    with pytest.raises(InvalidArgumentError, match="hidden\\[1\\]"):
        build_model("mlp", in_features=3, hidden=[4, 0])
    with pytest.raises(InvalidArgumentError, match="dropout"):
        build_model("mlp", in_features=3, dropout=1.5)
    with pytest.raises(InvalidArgumentError, match="n_buckets"):
        hash_tokens(["a"], n_buckets=0)
