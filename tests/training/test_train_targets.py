"""Label values a loss cannot take stop a training with an error naming ``config.label``.

Before, a class code of -100 (cross-entropy's ``ignore_index``) trained with no loss while the
row was counted as trained, a code outside the model's classes raised a bare ``IndexError``
from torch, and a BCE target outside [0, 1] trained to a negative loss."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainings import Catalog
from modyn_store.core.trainset import TrainSet
from training.distributed import spawn_training
from training.targets import TargetCheck
from training.trainer import TrainConfig, train

CFG = TrainConfig(model="logreg", model_params={"in_features": 2, "n_classes": 2},
                  inputs={"features": "x"}, label="label", epochs=2, batch_size=4, seed=1)


def _store(path: Path, labels: list[float] | list[int]) -> Store:
    x = np.random.default_rng(0).standard_normal((len(labels), 2)).astype(np.float32)
    store = Store.open(str(path), create=True)
    store.append(pa.table({"ts": np.arange(len(labels)), "label": pa.array(labels),
                           "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
    return store


def _nothing_recorded(store: Store, version: int) -> None:
    assert store.version == version
    assert Catalog(store).list() == []


@pytest.mark.parametrize("code", [-100, -1, 2, 7])
def test_a_class_code_outside_the_models_classes_is_refused(tmp_path: Path, code: int) -> None:
    labels = [0, 1] * 5
    labels[6] = code
    store = _store(tmp_path / "s", labels)
    before = store.version
    with pytest.raises(InvalidArgumentError, match=r"values \[%d\] in rows of keys \[6\]" % code) as err:
        train(store, TrainSet.uniform(np.arange(10), version=before), CFG, training_id="t1")
    assert err.value.name == "config.label"
    assert "0 .. 1" in str(err.value)
    _nothing_recorded(store, before)


@pytest.mark.parametrize("target", [2.0, -0.5, float("nan")])
def test_a_bce_target_outside_zero_one_is_refused(tmp_path: Path, target: float) -> None:
    labels = [0.0, 1.0, 0.25, 1.0] * 2
    labels[3] = target
    store = _store(tmp_path / "s", labels)
    before = store.version
    with pytest.raises(InvalidArgumentError, match=r"targets in \[0, 1\]") as err:
        train(store, TrainSet.uniform(np.arange(8), version=before), replace(CFG, loss="bce"), training_id="t1")
    assert err.value.name == "config.label"
    _nothing_recorded(store, before)
    # the rows whose targets are in [0, 1] train
    res = train(store, TrainSet.uniform(np.array([0, 1, 2, 4, 5, 6]), version=before), replace(CFG, loss="bce"),
                record=False)
    assert res.cost.samples == 12 and all(v >= 0 for v in res.epoch_losses)


def test_deferred_check_counts_and_raises_at_the_epochs_end() -> None:
    check = TargetCheck("cross_entropy", "y", defer=True)
    logits = torch.zeros(3, 4)
    out = check(logits, torch.tensor([0, 4, -100]))
    assert out.tolist() == [0, 0, 0]  # replaced, so that the loss never skips or fails on them
    check(logits, torch.tensor([5, 1, 1]), counted=False)  # a batch served again
    assert check.pending() == 2 and check.pending() == 0
    check(logits, torch.tensor([3, 9, 1]))
    with pytest.raises(InvalidArgumentError, match="1 invalid values in epoch 4"):
        check.finish(4)
    check.finish(5)  # nothing counted since


def test_every_ddp_rank_refuses_an_ignored_class_code(tmp_path: Path) -> None:
    labels = [0, 1] * 9
    labels[11] = -100  # on one rank's shard only
    store = _store(tmp_path / "s", labels)
    cfg = replace(CFG, shuffle=False)
    with pytest.raises(InvalidArgumentError, match="config.label.*1 invalid values") as err:
        spawn_training(store, TrainSet.uniform(np.arange(18), version=1), cfg, world_size=2, training_id="d1")
    assert err.value.name == "config.label"  # the rank's error itself, not torch's report of it
    assert Catalog(store).list() == []


@pytest.mark.gpu
@pytest.mark.parametrize("code", [-100, 2])
def test_a_class_code_outside_the_classes_is_refused_on_cuda(tmp_path: Path, code: int) -> None:
    """On a device the codes are not read back per step: counted there, refused at the epoch's
    end (before, -100 trained with no loss and other codes fired a device-side assert)."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    labels = [0, 1] * 5
    labels[6] = code
    store = _store(tmp_path / "s", labels)
    with pytest.raises(InvalidArgumentError, match="1 invalid values in epoch 0") as err:
        train(store, TrainSet.uniform(np.arange(10), version=1), replace(CFG, device="cuda"), training_id="t1")
    assert err.value.name == "config.label"
    _nothing_recorded(store, 1)
