"""Trainer input checks: refused record arguments write nothing, invalid configs, accumulation."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from torch import nn

from modyn_store import Store, TrainSet
from modyn_store.core.errors import InvalidArgumentError, UnknownVersionError
from modyn_store.core.trainings import Catalog
from training.trainer import TrainConfig, train

N = 200
CFG = TrainConfig(model="logreg", model_params={"in_features": 3, "n_classes": 2}, batch_size=16, lr=0.1)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, 3)).astype(np.float32)
    s = Store.open(str(tmp_path / "store"), create=True)
    s.append(pa.table({"ts": np.arange(N), "label": (x[:, 0] + 0.3 * x[:, 1] > 0).astype(np.int64),
                       "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 3)}))
    return s


def _set(store: Store, n: int = N) -> TrainSet:
    keys = store.as_of().keys()[:n]
    return TrainSet(keys, np.linspace(0.5, 2.0, keys.size), store.version)


def _models(store: Store) -> dict[str, bytes]:
    """Every file under the store's models folder and its bytes."""
    fs, root = store.fs, store.path("models")
    if not fs.exists(root):
        return {}
    return {str(p): fs.cat_file(p) for p in fs.find(root)}


class _Factory:
    """A model factory that counts its calls: a refused training never builds its model."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> nn.Module:
        self.calls += 1
        return nn.Sequential(nn.Linear(3, 2))


def _cfg(**kw: object) -> TrainConfig:
    return TrainConfig(inputs={"input": "x"}, batch_size=16, lr=0.1, **kw)  # type: ignore[arg-type]


# -- 1. record arguments are checked before training and before any file is written ----------------
def test_a_used_training_id_is_refused_before_training(store: Store) -> None:
    ts = _set(store)
    train(store, ts, CFG, training_id="t1")
    before, version = _models(store), store.version
    ref = Catalog(store).get("t1").checkpoint
    assert ref is not None and list(before) == [store.path(ref.uri)]
    sha = hashlib.sha256(before[store.path(ref.uri)]).hexdigest()
    assert Catalog(store).get("t1").checkpoint.sha256 == sha  # type: ignore[union-attr]
    factory = _Factory()
    with pytest.raises(InvalidArgumentError, match="not used before") as info:
        train(store, ts, _cfg(seed=1), model=factory, training_id="t1")
    assert info.value.name == "training_id"
    assert factory.calls == 0, "refused before the model is built"
    assert _models(store) == before, "the existing checkpoint is unchanged and nothing else was written"
    assert store.version == version
    Catalog(store).load_checkpoint("t1")  # its sha256 still matches


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"cutoff": (1,)}, "cutoff"),
        ({"cutoff": (1, True)}, "cutoff"),
        ({"cutoff": 7}, "cutoff"),
        ({"policy_params": {"a": object()}}, "policy_params"),
        ({"metrics": {"a": float}}, "metrics"),
        ({"trigger": {"keys": {1, 2}}}, "trigger"),
        ({"parent_id": "../bad"}, "parent_id"),
        ({"training_id": "no/slash"}, "training_id"),
        ({"update_decision": 5}, "update_decision"),
        ({"config": _cfg(model_params={"w": object()})}, "config"),
    ],
)
def test_arguments_the_catalog_refuses_are_refused_before_training(store: Store, kwargs: dict, name: str) -> None:
    ts = _set(store)
    version = store.version
    factory = _Factory()
    kwargs = dict(kwargs)
    config = kwargs.pop("config", _cfg())
    with pytest.raises(InvalidArgumentError) as info:
        train(store, ts, config, model=factory, **kwargs)
    assert info.value.name == name
    assert factory.calls == 0
    assert _models(store) == {}
    assert store.version == version
    # without recording nothing is stored, so the same arguments train
    train(store, ts, config, model=factory, record=False, **kwargs)
    assert factory.calls == 1 and _models(store) == {}


def test_a_train_set_of_a_future_version_is_refused_before_training(store: Store) -> None:
    ts = _set(store)
    factory = _Factory()
    with pytest.raises(UnknownVersionError):
        train(store, TrainSet(ts.keys, ts.weights, store.version + 1), _cfg(), model=factory)
    assert factory.calls == 0 and _models(store) == {}


def test_an_empty_train_set_or_epoch_plan_is_refused_before_training(store: Store) -> None:
    """A mean loss over no row is undefined: such a training was recorded with epoch loss 0.0 and
    its untrained model as checkpoint."""
    keys = store.as_of().keys()[:4]
    empty = TrainSet.uniform(np.empty(0, np.int64), version=store.version)
    second_empty = TrainSet(keys, np.ones(4), store.version, per_epoch=(np.array([0, 1]), np.empty(0, np.int64)))
    version = store.version
    for ts, epoch in ((empty, 0), (second_empty, 1)):
        for record in (True, False):
            factory = _Factory()
            with pytest.raises(InvalidArgumentError, match=f"in epoch {epoch}") as info:
                train(store, ts, _cfg(epochs=2), model=factory, training_id="e", record=record)
            assert info.value.name == "train_set" and factory.calls == 0
    assert _models(store) == {} and Catalog(store).list() == [] and store.version == version
    # an empty plan of an epoch it does not train is not served
    assert train(store, second_empty, _cfg(epochs=1), model=_Factory(), record=False).cost.samples == 2


def test_a_checkpoint_whose_record_fails_is_removed(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: object, **_k: object) -> None:
        raise InvalidArgumentError("training_id", "t9", "a training id not used before")

    monkeypatch.setattr(Catalog, "record_training", refuse)
    with pytest.raises(InvalidArgumentError):
        train(store, _set(store), CFG, training_id="t9")
    assert _models(store) == {}


# -- 2. invalid numbers and flags in TrainConfig ----------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lr", math.inf),
        ("lr", math.nan),
        ("lr", True),
        ("lr", 0.0),
        ("lr", "0.1"),
        ("momentum", math.nan),
        ("momentum", -1.0),
        ("momentum", math.inf),
        ("weight_decay", -1.0),
        ("weight_decay", math.nan),
        ("amp", "yes"),
        ("amp", 1),
        ("shuffle", "no"),
        ("deterministic", "no"),
        ("epochs", 0),
        ("grad_accum", True),
        ("seed", 1 << 63),
    ],
)
def test_invalid_config_values_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        replace(CFG, **{field: value})
    assert info.value.name == field
    with pytest.raises(InvalidArgumentError):
        TrainConfig.from_json({**CFG.to_json(), field: value})


def test_valid_configs_still_work(store: Store) -> None:
    cfgs = [
        replace(CFG, lr=1, momentum=0.9, weight_decay=1e-4, epochs=np.int64(2)),  # type: ignore[arg-type]
        replace(CFG, lr=np.float64(0.05), optimizer="adamw", weight_decay=0.01, shuffle=False),
        replace(CFG, optimizer="adam", momentum=0.0, amp=True, deterministic=False),
    ]
    assert cfgs[0].lr == 1.0 and type(cfgs[0].lr) is float and type(cfgs[0].epochs) is int
    for cfg in cfgs:
        assert TrainConfig.from_json(cfg.to_json()) == cfg
        res = train(store, _set(store, 64), cfg, record=False)
        assert all(np.isfinite(res.epoch_losses))


# -- 3. gradient accumulation over a short last group -----------------------------------------------
def _weights(store: Store, ts: TrainSet, **kw: object) -> torch.Tensor:
    cfg = replace(CFG, shuffle=False, optimizer="sgd", momentum=0.9, epochs=2, **kw)  # type: ignore[arg-type]
    return torch.cat([p.detach().flatten() for p in train(store, ts, cfg, record=False).model.parameters()])


@pytest.mark.parametrize(("n", "batch", "accum"), [(80, 8, 4), (75, 8, 4), (75, 8, 3), (100, 16, 2)])
def test_accumulation_equals_one_batch_of_the_groups_rows(store: Store, n: int, batch: int, accum: int) -> None:
    # n is not a multiple of batch * accum: the epoch's last group is shorter (and so may be its last batch)
    ts = _set(store, n)
    a = _weights(store, ts, batch_size=batch, grad_accum=accum)
    b = _weights(store, ts, batch_size=batch * accum)
    assert (a - b).abs().max().item() < 1e-6


def test_accumulation_keeps_per_sample_weights(store: Store) -> None:
    # doubling every weight equals doubling the learning rate, also with a short last group
    keys = store.as_of().keys()[:75]
    one = TrainSet(keys, np.ones(75), store.version)
    two = TrainSet(keys, np.full(75, 2.0), store.version)
    cfg = replace(CFG, shuffle=False, batch_size=8, grad_accum=4, epochs=1)
    a = train(store, two, replace(cfg, lr=0.05), record=False).model.state_dict()
    b = train(store, one, replace(cfg, lr=0.1), record=False).model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


# -- 4. momentum is SGD's -----------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_momentum_with_adam_is_refused(optimizer: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        replace(CFG, optimizer=optimizer, momentum=0.9)
    assert info.value.name == "momentum"
    assert replace(CFG, optimizer=optimizer, momentum=0.0).momentum == 0.0
    assert replace(CFG, optimizer="sgd", momentum=0.9).momentum == 0.9


# -- the same under DDP (two local gloo ranks) --------------------------------------------------------
def test_distributed_refuses_a_used_training_id_before_training(store: Store) -> None:
    from training.distributed import spawn_training

    ts = _set(store, 40)
    train(store, ts, CFG, training_id="t1")
    before, version = _models(store), store.version
    with pytest.raises(Exception, match="not used before"):
        spawn_training(store, ts, replace(CFG, seed=1), world_size=2, training_id="t1")
    assert _models(store) == before and store.version == version
    Catalog(store).load_checkpoint("t1")


def test_distributed_accumulation_equals_one_batch_of_the_groups_rows(store: Store) -> None:
    from training.distributed import spawn_training

    # 5 global steps of 8 rows, accumulated by 2: groups of 16, 16 and 8 rows
    ts = _set(store, 40)
    cfg = replace(CFG, shuffle=False, optimizer="sgd", momentum=0.9, epochs=2)
    state = spawn_training(store, ts, replace(cfg, batch_size=8, grad_accum=2), world_size=2, record=False)
    assert isinstance(state, dict)
    single = train(store, ts, replace(cfg, batch_size=16), record=False).model.state_dict()
    for k, v in single.items():
        torch.testing.assert_close(state[k], v, rtol=1e-5, atol=1e-6)


def test_a_recorded_adam_config_with_momentum_still_loads() -> None:
    """Configs recorded when Adam silently ignored ``momentum`` reproduce as they trained."""
    from training.trainer import TrainConfig

    recorded = {**TrainConfig(optimizer="adam").to_json(), "momentum": 0.9}
    cfg = TrainConfig.from_json(recorded)
    assert cfg.optimizer == "adam" and cfg.momentum == 0.0
    with pytest.raises(InvalidArgumentError, match="momentum"):
        TrainConfig(optimizer="adam", momentum=0.9)


def test_a_writer_that_loses_the_id_race_keeps_the_winners_checkpoint(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes pass the id check before either records: the loser's checkpoint goes to a file
    of its own and is removed when its record is refused; the winner's stays intact."""
    from training.recording import save_and_record

    ts = _set(store)
    train(store, ts, CFG, training_id="t1")  # the winner recorded first
    before = _models(store)
    with monkeypatch.context() as m:  # the loser checked the id before the winner recorded it
        m.setattr(Catalog, "check_unused", lambda self, tid: None)
        with pytest.raises(InvalidArgumentError, match="not used before"):
            save_and_record(Catalog(store), "t1", nn.Linear(3, 2), ts, CFG)
    assert _models(store) == before
    Catalog(store).load_checkpoint("t1")  # its sha256 still matches
