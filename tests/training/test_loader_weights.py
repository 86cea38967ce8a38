"""Batches hold float32 weights: a train set weight no float32 holds (> 0 and finite) is refused.

Before, a weight of 1e-50 (finite and > 0, as :class:`TrainSet` requires) was served as 0.0, so
its row counted for nothing in the loss while it was counted as trained, and 1e39 as inf."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainings import Catalog
from modyn_store.core.trainset import TrainSet
from training import loader, score
from training.trainer import TrainConfig, train

CFG = TrainConfig(model="logreg", model_params={"in_features": 2, "n_classes": 2},
                  inputs={"features": "x"}, label="label", epochs=1, batch_size=4, seed=1)


def _store(path: Path, n: int = 8) -> Store:
    x = np.random.default_rng(0).standard_normal((n, 2)).astype(np.float32)
    store = Store.open(str(path), create=True)
    store.append(pa.table({"ts": np.arange(n), "label": (x[:, 0] > 0).astype(np.int64),
                           "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
    return store


@pytest.mark.parametrize("weight", [1e-50, 2.0**-150, 1e39])
@pytest.mark.parametrize("shuffle", [False, True])
def test_a_weight_float32_cannot_hold_is_refused(tmp_path: Path, weight: float, shuffle: bool) -> None:
    store = _store(tmp_path / "s")
    weights = np.ones(8)
    weights[3] = weight
    ts = TrainSet(np.arange(8), weights, version=1)
    with pytest.raises(InvalidArgumentError, match=re.escape(f"1 weights such as [{weight!r}]")) as err:
        loader(store, ts, columns=["x"], batch_size=3, shuffle=shuffle)
    assert err.value.name == "train_set.weights"
    # the extremes float32 holds are served as they are
    weights = np.array([2.0**-149, 1.0, float(np.finfo(np.float32).max), 0.5])
    dl = loader(store, TrainSet(np.arange(4), weights, version=1), columns=["x"], batch_size=4, shuffle=False)
    served = next(iter(dl))["weight"].numpy()
    assert np.array_equal(served, weights.astype(np.float32))
    assert bool((served > 0).all()) and bool(np.isfinite(served).all())


def test_a_training_on_such_weights_records_nothing_and_scoring_ignores_them(tmp_path: Path) -> None:
    store = _store(tmp_path / "s")
    odd = TrainSet(np.arange(8), np.r_[np.ones(7), 1e-60], version=1)
    with pytest.raises(InvalidArgumentError, match="train_set.weights"):
        train(store, odd, CFG, training_id="t1")
    assert store.version == 1 and Catalog(store).list() == []
    # scores do not use the weights: the same set is scored as a uniform one
    model = train(store, TrainSet.uniform(np.arange(8), version=1), CFG, record=False).model
    got = score(store, model, inputs={"features": "x"}, write=False, train_set=odd)
    plain = score(store, model, inputs={"features": "x"}, write=False,
                  train_set=TrainSet.uniform(np.arange(8), version=1))
    assert np.array_equal(got.keys, plain.keys)
    assert all(np.array_equal(got.values[n], plain.values[n]) for n in plain.values)
