"""A caller's ``metrics`` may not replace what a training records of itself: its epoch losses,
and the facts `reproduce` reads to retrain it as it ran (``world_size``: how many ranks,
``batch_then_sample``: rows chosen per batch, ``reselections``: sets chosen again). They were
merged over the training's own, so a record said another training's losses, or sent its
reproduction down the path of a DDP training that never ran."""

from __future__ import annotations

import os

import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainings import Catalog
from modyn_store.core.trainset import TrainSet
from training.distributed import spawn_training
from training.trainer import TrainConfig, train

#: what train / train_distributed record of themselves (training.train_config.TRAINER_METRICS)
OWN = ("epoch_losses", "train_wall_s", "resumed_from", "batch_then_sample", "reselections", "world_size", "backend")
CFG = TrainConfig(model="mlp", model_params={"in_features": 8, "n_classes": 3, "hidden": [8]},
                  inputs={"features": "x"}, label="label", epochs=1, batch_size=32, seed=1)


def _set(store: Store, start: int) -> TrainSet:
    return TrainSet.uniform(store.as_of(None).keys()[start::8], version=store.version)


def test_metrics_naming_the_trainings_own_are_refused_before_anything_is_written(store: Store) -> None:
    first = train(store, _set(store, 0), CFG, training_id="a", metrics={"note": "kept"})
    assert first.record is not None and first.record.metrics["note"] == "kept"
    version, models = store.version, sorted(os.listdir(store.path("models")))
    carried = dict(first.record.metrics)  # another training's metrics, carried over whole
    with pytest.raises(InvalidArgumentError, match="metrics") as info:
        train(store, _set(store, 1), CFG, training_id="b", metrics=carried)
    assert "epoch_losses" in str(info.value) and "train_wall_s" in str(info.value)
    for key in OWN:
        with pytest.raises(InvalidArgumentError, match=key):
            train(store, _set(store, 1), CFG, training_id="b", metrics={key: 1})
        with pytest.raises(InvalidArgumentError, match=key):  # pairs, which the record takes as dict(metrics)
            train(store, _set(store, 1), CFG, training_id="b", metrics=[(key, 1)])  # type: ignore[arg-type]
    assert store.version == version and sorted(os.listdir(store.path("models"))) == models
    assert [r.training_id for r in Catalog(store).list()] == ["a"]


def test_a_launcher_refuses_them_before_starting_ranks(store: Store) -> None:
    version = store.version
    with pytest.raises(InvalidArgumentError, match="world_size"):
        spawn_training(store, _set(store, 0), CFG, world_size=2, training_id="d", metrics={"world_size": 4})
    assert Catalog(store).list() == [] and store.version == version


def test_metrics_given_as_an_iterator_of_pairs_are_recorded(store: Store) -> None:
    """The check read an iterator of pairs to its end, and the training recorded none of them."""
    rec = train(store, _set(store, 0), CFG, training_id="z", metrics=zip(["note", "run"], ["kept", 3])).record  # type: ignore[arg-type]
    assert rec is not None and rec.metrics["note"] == "kept" and rec.metrics["run"] == 3
