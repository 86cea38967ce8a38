"""`reproduce` retrains on the rows the store returns, not on the cache entry the training read:
an entry changed in place (a bit flip on disk, a stray writer) would otherwise give the
reproduction the same inputs as the training, and "identical" would hide that the training
did not learn from the store's rows."""

from __future__ import annotations

import glob
import os
import shutil
from typing import Any

from dataclasses import replace

import numpy as np
import pytest
import torch

from modyn_store import Store
from modyn_store.core.errors import CorruptionError, InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from training.batch import Batch
from training.errors import ErasedKeysError
from training.loading import LoaderOptions, loader
from training.reproduction import reproduce
from training.trainer import TrainConfig, model_inputs, train

CFG = TrainConfig(model="mlp", model_params={"in_features": 8, "n_classes": 3, "hidden": [8]},
                  inputs={"features": "x"}, label="label", epochs=2, batch_size=32, optimizer="adam",
                  lr=0.01, seed=4)


def _negate_features(store: Store) -> None:
    """Change the cached ``x`` rows of the store's one cache entry in place (same shape and dtype)."""
    (entry,) = glob.glob(os.path.join(store.path("_cache"), "v*"))
    changed = 0
    for path in glob.glob(os.path.join(entry, "c*.npy")):
        arr = np.load(path, mmap_mode="r+")
        if arr.dtype == np.float32 and arr.ndim == 2:
            arr[:] = -arr
            arr.flush()
            changed += 1
    assert changed == 1


def _train_set(store: Store) -> TrainSet:
    return TrainSet.uniform(store.as_of(None).keys()[::4], version=store.version)


def test_a_training_on_changed_cached_rows_does_not_reproduce(store: Store) -> None:
    ts = _train_set(store)
    loader(store, ts, columns=CFG.columns, batch_size=32).wait_materialized()
    _negate_features(store)  # the training reads these rows, not the store's
    train(store, ts, CFG, training_id="on-cache")
    rep = reproduce(store, "on-cache")
    assert not rep.identical and rep.mismatched
    # the comparison is not vacuous: a training on the store's rows reproduces
    shutil.rmtree(store.path("_cache"))
    train(store, ts, CFG, training_id="on-store")
    assert reproduce(store, "on-store").identical


def test_a_cache_entry_changed_after_the_training_does_not_fail_its_reproduction(store: Store) -> None:
    ts = _train_set(store)
    train(store, ts, CFG, training_id="t")
    _negate_features(store)
    assert reproduce(store, "t").identical


def test_a_reproduction_publishes_no_cache_entry(store: Store) -> None:
    train(store, _train_set(store), CFG, training_id="t")
    shutil.rmtree(store.path("_cache"))
    assert reproduce(store, "t", loader_options=LoaderOptions(threads=2)).identical
    assert glob.glob(os.path.join(store.path("_cache"), "v*")) == []


def test_reproduce_loader_options_tune_its_read(store: Store, planned: list[tuple[Any, Any]]) -> None:
    """``loader_options=`` reaches the reproduction's own read (its strategy and threads), with
    ``shared_cache`` forced off whatever it says."""
    ts = _train_set(store)
    train(store, ts, CFG, training_id="tuned")
    planned.clear()  # (the training's own read)
    seen = planned
    assert reproduce(store, "tuned", loader_options=LoaderOptions(strategy="scan", threads=2)).identical
    assert seen == [("scan", 2)]


def test_an_erasure_during_a_reproduction_raises_the_erased_keys(store: Store) -> None:
    """The reproduction's own entry in process memory is not one the store's erase removes: the
    loader checks its keys again at the next epoch and raises, rather than train on erased rows."""
    ts = _train_set(store)
    plain = replace(CFG, standardize=False)
    train(store, ts, plain, training_id="t", prepare=lambda b: model_inputs(b, plain.inputs))
    gone = np.sort(ts.keys)[:2]
    erased: list[bool] = []

    def prepare(batch: Batch) -> dict[str, torch.Tensor]:
        if not erased:
            erased.append(True)
            store.erase(gone.tolist(), reason="request")
        return model_inputs(batch, plain.inputs)

    with pytest.raises(ErasedKeysError) as info:
        reproduce(store, "t", prepare=prepare)
    assert info.value.keys.tolist() == gone.tolist()


def test_selection_rows_changed_after_the_record_are_reported_as_damage_not_as_erasure(store: Store) -> None:
    """Rows of ``selections`` that no longer match the recorded digest are damage (or forgery):
    ``CorruptionError``, not the ``DataUnavailableError`` that an erasure gives (``ErasedKeysError``
    is one), so that a caller never reports a changed selection as data erased since."""
    import lance

    train(store, _train_set(store), CFG, training_id="t")
    lance.dataset(store.path("selections.lance")).update({"weight": "2.0"}, where="position = 0")
    with pytest.raises(CorruptionError, match="'t' does not match its digest"):
        reproduce(Store.open(store.uri), "t")


def test_shared_cache_must_be_a_bool() -> None:
    with pytest.raises(InvalidArgumentError, match="LoaderOptions.shared_cache"):
        LoaderOptions(shared_cache="no")  # type: ignore[arg-type]


def test_a_model_fine_tuned_after_an_erasure_named_its_parent_trains_reproduces_and_is_reported_later(
        store: Store) -> None:
    """Fine-tuning from a training an erasure named goes on (a Finetune pipeline's path, see
    docs/pipelines.md "Deletion in the loop"): the parent's checkpoint is kept, the child's own
    rows are live, so the child reproduces while the parent does not; a later erasure of the
    parent's keys names the child among its descendants."""
    keys = store.as_of(None).keys()
    parent_set = TrainSet.uniform(keys[:400:2], version=store.version)
    train(store, parent_set, CFG, training_id="p")
    first = store.erase([int(parent_set.keys[0])], reason="request")
    assert first.trainings == ("p",) and first.descendants == ()
    child_set = TrainSet.uniform(keys[1:400:2], version=store.version)
    train(store, child_set, replace(CFG, mode="finetune"), training_id="d", parent_id="p")
    with pytest.raises(ErasedKeysError):
        reproduce(store, "p")
    assert reproduce(store, "d").identical
    later = store.erase([int(parent_set.keys[1])], reason="request")
    assert later.trainings == ("p",) and later.descendants == ("d",)
