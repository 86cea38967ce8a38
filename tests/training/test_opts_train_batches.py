"""``batch_size``, ``shuffle`` and ``seed`` of a ``TrainConfig`` reach the batches ``training.train`` steps on."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from modyn_store.core.trainset import TrainSet
from training.loading import epoch_order
from training.trainer import TrainConfig, train

N = 120
BASE = TrainConfig(model="logreg", model_params={"in_features": 8, "n_classes": 3}, inputs={"features": "x"},
                   label="label", epochs=2, batch_size=N, shuffle=False, seed=11, optimizer="sgd", lr=0.3)


def _weights(store: Any, **over: Any) -> dict[str, torch.Tensor]:
    keys = np.sort(store.as_of(None).keys()[:N])
    res = train(store, TrainSet.uniform(keys, version=store.version), replace(BASE, **over), record=False)
    return {k: v.detach().clone() for k, v in res.model.state_dict().items()}


def _differ(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return any(not torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a)


def test_batch_size_sets_the_number_of_steps(store: Any) -> None:
    full = _weights(store)
    assert not _differ(full, _weights(store))  # the same settings train the same weights
    assert _differ(full, _weights(store, batch_size=N // 4))  # four steps an epoch instead of one


def test_shuffle_changes_the_batch_order(store: Any) -> None:
    ordered = _weights(store, batch_size=N // 4)
    shuffled = _weights(store, batch_size=N // 4, shuffle=True)
    assert not _differ(shuffled, _weights(store, batch_size=N // 4, shuffle=True))  # seeded
    assert _differ(ordered, shuffled)


def test_seed_sets_the_shuffled_batch_order(store: Any) -> None:
    # the seed shuffles the epochs, not only the initial weights: the rows come in the order
    # epoch_order gives for that seed (the order reproduce() replays)
    keys = np.sort(store.as_of(None).keys()[:N])
    ts = TrainSet.uniform(keys, version=store.version)
    seen: list[np.ndarray] = []

    def prepare(batch: dict[str, Any]) -> dict[str, Any]:
        seen.append(batch["key"].numpy().copy())
        return {"features": batch["x"]}

    cfg = replace(BASE, batch_size=N // 4, shuffle=True, seed=5)
    train(store, ts, cfg, record=False, prepare=prepare)

    def visits(seed: int) -> np.ndarray:
        return np.concatenate([ts.keys[epoch_order(ts, e, shuffle=True, seed=seed)] for e in range(cfg.epochs)])

    assert not np.array_equal(visits(5), visits(0))
    np.testing.assert_array_equal(np.concatenate(seen), visits(5))
