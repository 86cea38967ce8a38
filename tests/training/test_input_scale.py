"""Models that standardize their features: a training from scratch scales them to its train set,
a fine-tuned model keeps its parent's scale, ``standardize=False`` trains on raw values, and
checkpoints and records from before the scale existed read back as unscaled."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from modyn_store import Store
from modyn_store.core.trainings import Catalog
from modyn_store.core.trainset import TrainSet
from training.models import build_model
from training.reproduction import reproduce
from training.scaling import mean_std
from training.trainer import TrainConfig, train

CFG = TrainConfig(model="mlp", model_params={"in_features": 8, "n_classes": 3, "hidden": [16]},
                  inputs={"features": "x"}, label="label", epochs=1, batch_size=32, seed=4)


def _x(store: Store, keys: np.ndarray) -> np.ndarray:
    t = store.as_of(None).to_table(["key", "x"])
    pos = {int(k): i for i, k in enumerate(t.column("key").to_numpy())}
    x = np.stack(t.column("x").to_numpy(zero_copy_only=False))
    return x[[pos[int(k)] for k in keys]].astype(np.float64)


def test_a_training_from_scratch_scales_to_its_train_set(store: Store) -> None:
    keys = np.arange(100, 700)
    res = train(store, TrainSet.uniform(keys, version=store.version), CFG, record=False)
    x = _x(store, keys)
    scale = res.model.input_scale
    torch.testing.assert_close(scale.shift, torch.tensor(x.mean(0), dtype=torch.float32))
    torch.testing.assert_close(scale.scale, torch.tensor(1.0 / x.std(0), dtype=torch.float32))
    raw = train(store, TrainSet.uniform(keys, version=store.version), replace(CFG, standardize=False), record=False)
    assert bool((raw.model.input_scale.shift == 0).all()) and bool((raw.model.input_scale.scale == 1).all())
    # with prepare= the model sees what it returns (here the column doubled): no statistics of the column
    doubled = train(store, TrainSet.uniform(keys, version=store.version), CFG, record=False,
                    prepare=lambda b: {"features": 2 * b["x"]})
    assert bool((doubled.model.input_scale.shift == 0).all()) and bool((doubled.model.input_scale.scale == 1).all())


def test_a_fine_tuned_model_keeps_its_parents_scale(store: Store) -> None:
    parent = train(store, TrainSet.uniform(np.arange(0, 400), version=store.version), CFG, training_id="p")
    other = TrainSet.uniform(np.arange(1500, 1900), version=store.version)  # other rows, other statistics
    child = train(store, other, replace(CFG, mode="finetune"), training_id="c", parent_id="p")
    scratch = train(store, other, CFG, record=False)
    for name in ("shift", "scale"):
        assert torch.equal(getattr(child.model.input_scale, name), getattr(parent.model.input_scale, name))
        assert not torch.equal(getattr(scratch.model.input_scale, name), getattr(parent.model.input_scale, name))
    assert torch.equal(Catalog(store).load_checkpoint("c")["input_scale.shift"], parent.model.input_scale.shift)


def test_reproduction_of_a_scaled_training_is_bit_identical(store: Store) -> None:
    train(store, TrainSet.uniform(np.arange(0, 500), version=store.version), CFG, training_id="r")
    rep = reproduce(store, "r")
    assert rep.identical and rep.mismatched == ()


def test_checkpoints_and_records_from_before_read_back_unscaled() -> None:
    torch.manual_seed(0)
    net = build_model("logreg", in_features=3, n_classes=2)
    old = {k: v for k, v in net.state_dict().items() if not k.startswith("input_scale.")}
    fresh = build_model("logreg", in_features=3, n_classes=2)
    fresh.input_scale.fit_(torch.tensor([5.0, 5.0, 5.0]), torch.tensor([2.0, 2.0, 2.0]))
    fresh.load_state_dict(old)  # strict: the missing scale is filled with the identity it trained with
    x = torch.randn(4, 3)
    torch.testing.assert_close(fresh(x), net.linear(x))
    d = replace(CFG, standardize=True).to_json()
    assert d["standardize"] is True and TrainConfig.from_json(d).standardize is True
    del d["standardize"]
    assert TrainConfig.from_json(d).standardize is False  # written before the field: trained on raw values
    with pytest.raises(Exception, match="standardize"):
        TrainConfig(model="logreg", standardize="yes")  # type: ignore[arg-type]


def test_mean_std_merges_blocks_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    import training.scaling as scaling

    rng = np.random.default_rng(3)
    a = (rng.standard_normal((1001, 4)) * [1e-3, 1.0, 50.0, 0.0] + [1e6, -3.0, 60.0, 7.0]).astype(np.float32)
    monkeypatch.setattr(scaling, "BLOCK_ROWS", 64)  # 16 blocks, the last one short
    m, s = mean_std(a)
    np.testing.assert_allclose(m, a.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(s, a.astype(np.float64).std(0), rtol=1e-7, atol=1e-12)


def test_features_in_raw_units_are_learned(tmp_path: Path) -> None:
    """A temperature around 60 and a vibration around 1 decide the class; with the defaults
    (plain SGD, lr 0.01) the raw values leave the model near the majority class, the scaled ones
    learn the rule."""
    rng = np.random.default_rng(7)
    n = 3000
    temp, vib = rng.normal(60, 8, n), rng.normal(1.0, 0.3, n)
    score = (temp - 60) / 8 + (vib - 1.0) / 0.3
    label = np.where(score > 1.2, 2, np.where(score > 0.0, 1, 0))
    feats = np.stack([temp, vib], axis=1).astype(np.float32)
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(n), "label": label,
                           "features": pa.FixedSizeListArray.from_arrays(pa.array(feats.ravel()), 2)}))
    cfg = TrainConfig(model="logreg", model_params={"in_features": 2, "n_classes": 3},
                      inputs={"features": "features"}, epochs=5, batch_size=64)
    ts = TrainSet.uniform(store.as_of(None).keys(), version=store.version)

    def accuracy(c: TrainConfig) -> float:
        net = train(store, ts, c, record=False).model.eval()
        with torch.no_grad():
            return float((net(torch.from_numpy(feats)).argmax(1).numpy() == label).mean())

    majority = float(np.bincount(label).max() / n)
    scaled, raw = accuracy(cfg), accuracy(replace(cfg, standardize=False))
    # (measured: 0.85 scaled, 0.30 raw, against 0.51 for always the majority class)
    assert scaled > 0.8 > majority + 0.25 and raw < majority, (scaled, raw, majority)
