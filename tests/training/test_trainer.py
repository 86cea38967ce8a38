"""Trainer and reproduction: bit-identical CPU retraining, fine-tuning, weights, cost, erasure."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainings import Catalog
from modyn_store.core.trainset import TrainSet
from training.errors import ErasedKeysError, ReproductionError
from training.loading import epoch_order, loader
from training.progress import saved_progress
from training.reproduction import reproduce, reproduce_train_set, visit_order
from training.trainer import TrainConfig, state_equal, train

CFG = TrainConfig(
    model="mlp",
    model_params={"in_features": 8, "n_classes": 3, "hidden": [16]},
    inputs={"features": "x"},
    label="label",
    epochs=2,
    batch_size=32,
    optimizer="adam",
    lr=0.01,
    grad_accum=2,
    seed=4,
)


def _weighted_set(store, n: int = 300, seed: int = 0) -> TrainSet:
    rng = np.random.default_rng(seed)
    keys = rng.choice(store.as_of(None).keys(), n, replace=False)
    return TrainSet(keys=keys, weights=rng.uniform(0.5, 2, n), version=store.version)


def test_reproduction_is_bit_identical_on_cpu(store) -> None:
    ts = _weighted_set(store)
    first = train(store, ts, CFG, training_id="r1", policy="uniform")
    rep = reproduce(store, "r1")
    assert rep.identical and rep.mismatched == ()
    assert rep.train_set == ts and np.array_equal(rep.train_set.keys, ts.keys)
    stored = Catalog(store).load_checkpoint("r1")
    assert state_equal(stored, {k: v.detach() for k, v in first.model.state_dict().items()}) == []
    # the comparison is not vacuous: another seed gives other weights
    other = train(store, ts, replace(CFG, seed=5), record=False)
    assert state_equal(stored, other.model.state_dict()) != []


def test_reproduced_order_matches_the_loader(store) -> None:
    ts = _weighted_set(store, seed=1)
    train(store, ts, CFG, training_id="r2")
    dl = loader(store, reproduce_train_set(store, "r2"), columns=["x"], batch_size=50, seed=CFG.seed)
    for epoch in range(2):
        served = np.concatenate([b["key"].numpy() for b in dl])
        assert np.array_equal(served, visit_order(store, "r2", epoch))
        assert np.array_equal(served, ts.keys[epoch_order(ts, epoch, shuffle=True, seed=CFG.seed)])


def test_visit_order_gives_only_epochs_the_training_ran(store) -> None:
    ts = _weighted_set(store, seed=2)
    train(store, ts, CFG, training_id="r3")
    assert visit_order(store, "r3", CFG.epochs - 1).size == ts.size
    for epoch in (CFG.epochs, CFG.epochs + 5, -1, 1.0):
        with pytest.raises(InvalidArgumentError) as info:
            visit_order(store, "r3", epoch)
        assert info.value.name == "epoch"
    # a training recorded without a trainer configuration has no recorded seed or shuffle
    Catalog(store).record_training("bare", ts)
    with pytest.raises(ReproductionError, match="no trainer configuration"):
        visit_order(store, "bare", 0)


def test_reproduce_after_erasure_names_the_keys(store) -> None:
    ts = _weighted_set(store, seed=2)
    train(store, ts, CFG, training_id="r3")
    gone = np.sort(ts.keys[[5, 17]])
    store.erase(gone.tolist(), reason="user request")
    with pytest.raises(ErasedKeysError) as info:
        reproduce(store, "r3")
    assert info.value.keys.tolist() == gone.tolist()
    assert all(str(k) in str(info.value) for k in gone)


def test_a_training_whose_keys_are_erased_while_it_trains_is_not_recorded(store) -> None:
    """An erase names the recorded trainings that used its keys; one that commits while a
    training reads the rows came before its record, which then named the erased keys unseen."""
    ts = _weighted_set(store, seed=6)
    gone = int(ts.keys[3])

    class Erasing(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(8, 3)
            self.erased = None

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            if self.erased is None:  # the rows are in the training's hands already
                self.erased = store.erase([gone], reason="user request")
            return self.fc(features)

    before = store.version
    with pytest.raises(ErasedKeysError) as info:
        train(store, ts, replace(CFG, epochs=1), training_id="e1", model=Erasing)
    assert info.value.keys.tolist() == [gone]
    assert Catalog(store).list() == [] and store.version == before + 1  # the erase's version only
    assert store.log()[-1].op == "erase" and store.log()[-1].details["trainings"] == []
    models = store.path("models")  # the checkpoint written before the record went with it
    assert not store.fs.exists(models) or store.fs.ls(models, detail=False) == []


def test_the_progress_of_a_training_whose_keys_are_erased_while_it_trains_is_removed(store) -> None:
    """A progress saved before the erase holds model state learned from the erased rows."""
    ts = _weighted_set(store, seed=7)
    gone = int(ts.keys[5])
    calls = []

    class Erasing(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(8, 3)

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            calls.append(1)
            if len(calls) == 6:  # after a save of the progress (every 2 batches)
                assert saved_progress(store, "e2") is not None
                store.erase([gone], reason="user request")
            return self.fc(features)

    with pytest.raises(ErasedKeysError) as info:
        train(store, ts, replace(CFG, epochs=1), training_id="e2", model=Erasing, save_every=2)
    assert info.value.keys.tolist() == [gone] and Catalog(store).list() == []
    assert saved_progress(store, "e2") is None
    models = store.path("models")  # no progress file, no checkpoint
    assert not store.fs.exists(models) or store.fs.ls(models, detail=False) == []


def test_finetune_starts_from_the_parent(store) -> None:
    ts = _weighted_set(store, seed=3)
    parent = train(store, ts, CFG, training_id="p1")
    tiny = replace(CFG, mode="finetune", lr=1e-9, optimizer="sgd", epochs=1)
    child = train(store, ts, tiny, parent_id="p1", training_id="c1")
    scratch = train(store, ts, replace(tiny, mode="scratch", seed=99), record=False)
    p = parent.model.state_dict()
    c = child.model.state_dict()
    s = scratch.model.state_dict()
    assert all(torch.allclose(c[k], p[k], atol=1e-6) for k in p)
    assert not all(torch.allclose(s[k], p[k], atol=1e-3) for k in p)
    assert [x.training_id for x in Catalog(store).lineage("c1")] == ["c1", "p1"]
    assert reproduce(store, "c1").identical


def test_cost_accounting(store) -> None:
    ts = _weighted_set(store, n=100)
    res = train(store, ts, replace(CFG, epochs=3), training_id="k1")
    assert res.cost.samples == 300 and res.record is not None and res.record.cost == res.cost
    assert 0 < res.cost.device_s <= res.cost.wall_s
    assert len(res.epoch_losses) == 3 and all(np.isfinite(res.epoch_losses))


def test_gradient_accumulation_equals_a_larger_batch(store) -> None:
    ts = TrainSet.uniform(store.as_of(None).keys()[:64], version=store.version)
    base = replace(CFG, optimizer="sgd", lr=0.1, epochs=1, shuffle=False)
    a = train(store, ts, replace(base, batch_size=16, grad_accum=2), record=False).model.state_dict()
    b = train(store, ts, replace(base, batch_size=32, grad_accum=1), record=False).model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_per_sample_weights_scale_the_gradient(store) -> None:
    keys = store.as_of(None).keys()[:64]
    one = TrainSet(keys=keys, weights=np.ones(64), version=store.version)
    two = TrainSet(keys=keys, weights=np.full(64, 2.0), version=store.version)
    base = replace(CFG, optimizer="sgd", epochs=1, shuffle=False, batch_size=64, grad_accum=1)
    a = train(store, two, replace(base, lr=0.05), record=False).model.state_dict()
    b = train(store, one, replace(base, lr=0.1), record=False).model.state_dict()
    c = train(store, one, replace(base, lr=0.05), record=False).model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not all(torch.allclose(a[k], c[k], atol=1e-6) for k in a)


def test_amp_on_cpu_runs(store) -> None:
    ts = _weighted_set(store, n=64)
    res = train(store, ts, replace(CFG, amp=True, epochs=1), record=False)
    assert all(np.isfinite(res.epoch_losses))


def test_a_cpu_training_with_amp_reproduces(store) -> None:
    """A CPU training with ``amp`` ran under bfloat16 autocast: its reproduction replays that
    (it retrained in float32 and reported a recorded, reproducible training as different)."""
    ts = _weighted_set(store, n=128, seed=3)
    train(store, ts, replace(CFG, amp=True, device="cpu"), training_id="amp-cpu")
    rep = reproduce(store, "amp-cpu")
    assert rep.identical and rep.mismatched == ()
