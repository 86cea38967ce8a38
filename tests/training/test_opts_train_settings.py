"""training.train applies the optimizer, loss and recording arguments it is given: its weights
equal a plain torch loop with the same settings, and what it records is what it was passed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch

from modyn_store.core.trainings import Catalog
from modyn_store.core.trainset import TrainSet
from training.entries import LoaderOptions
from training.models import build_model
from training.trainer import TrainConfig, train

N = 120
BASE = TrainConfig(model="logreg", model_params={"in_features": 8, "n_classes": 3}, inputs={"features": "x"},
                   label="label", epochs=3, batch_size=N, shuffle=False, seed=11, optimizer="sgd", lr=0.1)


def _rows(store: Any, keys: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    t = store.as_of(None).to_table(["key", "x", "label"])
    pos = {k: i for i, k in enumerate(t.column("key").to_pylist())}
    idx = [pos[int(k)] for k in keys]
    x = torch.tensor(np.array(t.column("x").to_pylist(), dtype=np.float32)[idx])
    y = torch.tensor(np.array(t.column("label").to_pylist())[idx])
    return x, y


def _reference(store: Any, keys: np.ndarray, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """One full batch per epoch with plain torch: the weights the settings must give (with
    ``standardize``, the model's input scale set to the train set's mean and population std)."""
    torch.manual_seed(cfg.seed)
    net = build_model(cfg.model, **cfg.model_params)
    x, y = _rows(store, keys)
    if cfg.standardize:
        x64 = x.double()
        with torch.no_grad():
            net.input_scale.shift.copy_(x64.mean(0).float())
            net.input_scale.scale.copy_((1.0 / x64.std(0, unbiased=False)).float())
    opt: torch.optim.Optimizer
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for _ in range(cfg.epochs):
        opt.zero_grad()
        logits = net(features=x)
        if cfg.loss == "cross_entropy":
            loss = torch.nn.functional.cross_entropy(logits, y)
        elif cfg.loss == "bce":
            z = logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits.reshape(-1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y.float())
        else:
            loss = ((logits - y.float()[:, None]) ** 2).mean()
        loss.backward()
        opt.step()
    return {k: v.detach() for k, v in net.state_dict().items()}


def _keys(store: Any, n: int = N) -> np.ndarray:
    return np.sort(store.as_of(None).keys()[:n])


CASES = {
    "sgd_lr": dict(lr=0.3),
    "sgd_momentum": dict(momentum=0.9),
    "sgd_weight_decay": dict(weight_decay=0.5),
    "adam": dict(optimizer="adam", lr=0.05, weight_decay=0.2),
    "adamw": dict(optimizer="adamw", lr=0.05, weight_decay=0.2),
    "mse": dict(loss="mse", model_params={"in_features": 8, "n_classes": 1}),
    "epochs": dict(epochs=5),
    "raw_inputs": dict(standardize=False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_weights_equal_a_plain_torch_loop_with_the_same_settings(store: Any, case: str) -> None:
    cfg = replace(BASE, **CASES[case])
    keys = _keys(store)
    got = train(store, TrainSet.uniform(keys, version=store.version), cfg, record=False).model.state_dict()
    want = _reference(store, keys, cfg)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6)
    # the setting matters: the defaults give other weights
    default = _reference(store, keys, BASE if case != "mse" else replace(BASE, **{**CASES[case], "loss": "mse",
                                                                                   "lr": 0.01}))
    assert any(not torch.allclose(want[k], default[k], rtol=1e-4, atol=1e-5) for k in want)


def test_bce_loss_is_used(store: Any) -> None:
    # labels 0/1 only: keys with label 2 left out
    t = store.as_of(None).to_table(["key", "label"])
    keys = np.sort(np.asarray(t.column("key").to_numpy())[np.asarray(t.column("label").to_numpy()) < 2][:N])
    cfg = replace(BASE, loss="bce", model_params={"in_features": 8, "n_classes": 1})  # one logit per row
    got = train(store, TrainSet.uniform(keys, version=store.version), cfg, record=False).model.state_dict()
    want = _reference(store, keys, cfg)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6)
    torch.manual_seed(cfg.seed)
    untrained = build_model(cfg.model, **cfg.model_params).state_dict()  # cross entropy of one class: no gradient
    assert any(not torch.allclose(want[k], untrained[k], rtol=1e-4, atol=1e-5) for k in want)


def test_recorded_facts_are_the_ones_passed(store: Any) -> None:
    keys = _keys(store, 60)
    ts = TrainSet.uniform(keys, version=store.version)
    train(store, ts, BASE, training_id="base-0")
    v = store.version
    res = train(store, ts, replace(BASE, mode="finetune"), training_id="facts-1", parent_id="base-0",
                policy="uniform", policy_params={"ratio": 0.5}, trigger={"reason": "every 7 days"},
                cutoff=(v, 3), update_decision='{"mode": "finetune"}', metrics={"note": "x"})
    rec = Catalog(store).get("facts-1")
    assert rec == res.record
    assert rec.policy == "uniform" and rec.policy_params == {"ratio": 0.5}
    assert rec.trigger == {"reason": "every 7 days"} and rec.cutoff == (v, 3)
    assert rec.update_decision == '{"mode": "finetune"}' and rec.parent_id == "base-0"
    assert rec.metrics["note"] == "x" and len(rec.metrics["epoch_losses"]) == BASE.epochs


def test_finetune_starts_from_the_parent_checkpoint(store: Any) -> None:
    keys = _keys(store, 60)
    ts = TrainSet.uniform(keys, version=store.version)
    parent = train(store, ts, replace(BASE, lr=0.5), training_id="p-0")
    child = train(store, ts, replace(BASE, mode="finetune", epochs=1, lr=1e-12), training_id="p-1", parent_id="p-0")
    scratch = train(store, ts, replace(BASE, epochs=1, lr=1e-12), record=False)
    for k, v in parent.model.state_dict().items():
        torch.testing.assert_close(child.model.state_dict()[k], v)  # a step of 1e-12 from the parent
    assert any(not torch.allclose(scratch.model.state_dict()[k], v) for k, v in parent.model.state_dict().items())


def test_record_false_writes_nothing(store: Any) -> None:
    before = store.version
    train(store, TrainSet.uniform(_keys(store, 30), version=store.version), BASE, training_id="norec", record=False)
    assert store.version == before and [r.training_id for r in Catalog(store).list()] == []


def test_loader_options_reach_the_loader(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import training.trainer as trainer

    seen: list[Any] = []
    real = trainer.loader

    def loader(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("options"))
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "loader", loader)
    opts = LoaderOptions(strategy="scan", prefetch=1, host_memory_budget=0)
    train(store, TrainSet.uniform(_keys(store, 30), version=store.version), BASE, record=False, loader_options=opts)
    assert seen == [opts]


def test_prepare_builds_the_forward_arguments(store: Any) -> None:
    keys = _keys(store)
    ts = TrainSet.uniform(keys, version=store.version)
    flipped = train(store, ts, BASE, record=False, prepare=lambda b: {"features": -b["x"]}).model.state_dict()
    plain = train(store, ts, BASE, record=False).model.state_dict()
    assert any(not torch.allclose(flipped[k], plain[k]) for k in plain)


def test_amp_trains_in_reduced_precision(store: Any) -> None:
    keys = _keys(store)
    ts = TrainSet.uniform(keys, version=store.version)
    full = train(store, ts, BASE, record=False).model.state_dict()
    mixed = train(store, ts, replace(BASE, amp=True), record=False).model.state_dict()
    torch.testing.assert_close(mixed, full, rtol=0.05, atol=0.01)  # the same training, bfloat16 on the CPU
    assert any(not torch.equal(mixed[k], full[k]) for k in full)


@pytest.mark.parametrize("enabled", [True, False])
def test_deterministic_algorithms_while_training(store: Any, enabled: bool) -> None:
    seen: list[bool] = []

    def prepare(batch: dict) -> dict:
        seen.append(torch.are_deterministic_algorithms_enabled())
        return {"features": batch["x"]}

    before = torch.are_deterministic_algorithms_enabled()
    train(store, TrainSet.uniform(_keys(store, 30), version=store.version), replace(BASE, deterministic=enabled),
          record=False, prepare=prepare)
    assert seen and set(seen) == {enabled or before}
    assert torch.are_deterministic_algorithms_enabled() == before  # restored afterwards
