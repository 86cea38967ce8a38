"""A training whose loss stops being finite (an inf feature, a diverging optimizer) stops with
:class:`DivergedError` and records nothing: before, it stored NaN weights and reported metrics."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainings import Catalog
from modyn_store.core.trainset import TrainSet
from training import DivergedError
from training.trainer import TrainConfig, train

CFG = TrainConfig(model="logreg", model_params={"in_features": 2, "n_classes": 2},
                  inputs={"features": "x"}, label="label", epochs=2, batch_size=16, seed=1)


def _store(path: Path, x: np.ndarray) -> Store:
    store = Store.open(str(path), create=True)
    store.append(pa.table({"ts": np.arange(len(x)), "label": (x[:, 0] > 0).astype(np.int64),
                           "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
    return store


def test_an_inf_feature_stops_the_training_before_it_is_recorded(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((64, 2)).astype(np.float32)
    x[5, 1] = np.inf
    store = _store(tmp_path / "s", x)
    before = store.version
    # fitting the input scale sees every row first: it names the column
    with pytest.raises(InvalidArgumentError, match="1 rows with an inf or NaN") as bad:
        train(store, TrainSet.uniform(np.arange(64), version=before), CFG, training_id="t1")
    assert bad.value.name == "train set column 'x'"
    with pytest.raises(DivergedError) as err:
        train(store, TrainSet.uniform(np.arange(64), version=before), replace(CFG, standardize=False),
              training_id="t1")
    assert err.value.epoch == 0 and not np.isfinite(err.value.loss)
    assert store.version == before and Catalog(store).list() == []


def test_a_diverging_optimizer_is_named_by_its_epoch(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((64, 2)).astype(np.float32) * 1e3
    store = _store(tmp_path / "s", x)
    cfg = replace(CFG, standardize=False, optimizer="sgd", lr=1e38, epochs=3)
    with pytest.raises(DivergedError) as err:
        train(store, TrainSet.uniform(np.arange(64), version=store.version), cfg, record=False)
    assert "lr" in str(err.value)
    # the same data with a sane step trains, and its losses are finite
    ok = train(store, TrainSet.uniform(np.arange(64), version=store.version), CFG, record=False)
    assert all(np.isfinite(ok.epoch_losses))


def test_training_errors_survive_pickling() -> None:
    """Errors raised in another process (a Ray task or Train worker, a DDP rank) are pickled back
    to the caller: they arrive as themselves, with their attributes."""
    import pickle

    from training.errors import DivergedError, ErasedKeysError

    erased = pickle.loads(pickle.dumps(ErasedKeysError("train set at version 3", np.array([9, 2]))))
    assert type(erased) is ErasedKeysError and erased.keys.tolist() == [2, 9]
    assert str(erased) == str(ErasedKeysError("train set at version 3", np.array([2, 9])))
    diverged = pickle.loads(pickle.dumps(DivergedError(4, float("inf"))))
    assert type(diverged) is DivergedError and (diverged.epoch, diverged.loss) == (4, float("inf"))
