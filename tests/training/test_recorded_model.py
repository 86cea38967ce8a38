"""``training.load_model``: a recorded training's model, built from its recorded model name and
loaded with its checkpoint."""

from __future__ import annotations

import pytest
import torch

import training
from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError, UnknownKeyError
from modyn_store.core.trainings import Catalog
from modyn_store.core.trainset import TrainSet
from training.trainer import TrainConfig, train

CFG = TrainConfig(model="mlp", model_params={"in_features": 8, "n_classes": 3, "hidden": [4]},
                  inputs={"features": "x"}, batch_size=64, seed=1)


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_the_recorded_model_has_the_trained_weights(store: Store) -> None:
    ts = TrainSet.uniform(store.as_of(None).keys()[:256], version=store.version)
    res = train(store, ts, CFG, training_id="t1")
    model = training.load_model(store, "t1")
    assert type(model) is type(res.model) and _states_equal(model, res.model)
    x = torch.randn(5, 8)
    res.model.eval()
    model.eval()
    assert torch.equal(model(features=x), res.model(features=x))


def test_an_unknown_training_is_refused_and_nothing_is_written(store: Store) -> None:
    before = store.version
    with pytest.raises(UnknownKeyError, match="no training 'nope' in the catalog"):
        training.load_model(store, "nope")
    assert store.version == before


def test_a_module_trained_in_code_has_no_recorded_model_name(store: Store) -> None:
    ts = TrainSet.uniform(store.as_of(None).keys()[:64], version=store.version)
    net = torch.nn.Linear(8, 3)
    cfg = TrainConfig(inputs={"input": "x"}, batch_size=64, seed=1)
    train(store, ts, cfg, model=net, training_id="code")
    with pytest.raises(InvalidArgumentError, match="models='code'.*registered model name") as err:
        training.load_model(store, "code", name="models")
    assert err.value.name == "models"


def test_a_checkpoint_of_another_architecture_names_the_argument_and_the_training(store: Store) -> None:
    cat = Catalog(store)
    ref = cat.save_checkpoint("wide", {"weight": torch.zeros(7, 7)})
    ts = TrainSet.uniform(store.as_of(None).keys()[:64], version=store.version)
    cat.record_training("wide", ts, checkpoint=ref, config=CFG.to_json())
    with pytest.raises(InvalidArgumentError, match="training_id='wide'.*fits MLP"):
        training.load_model(store, "wide")
