"""The training, evaluation, limits, model and source settings of a pipeline reach what it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modyn_store import Store
from modyn_store.app.pipeline import parse_pipeline, run_pipeline
from modyn_store.core.trainings import Catalog
from pipeline_helpers import tiny

SETTINGS = {"epochs": 2, "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "momentum": 0.5,
            "weight_decay": 0.01, "seed": 7, "threads": 2, "device": "cpu", "standardize": False}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One replay with every setting away from its default; torch's thread count seen by each training."""
    import torch

    import training

    seen: list[int] = []
    real = training.train

    def train(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    path = tmp_path_factory.mktemp("opts") / "s"
    cfg = parse_pipeline(tiny("opts", source={"dataset": "elec2", "limit": 2000, "chunk": "5d"},
                              model={"name": "mlp", "params": {"hidden": [5]}},
                              trigger={"name": "time", "every": "7d"}, training=dict(SETTINGS),
                              evaluation={"slices": 3, "metric": "f1"},
                              limits={"max_trainings": 3, "min_train_rows": 1}))
    mp = pytest.MonkeyPatch()
    mp.setattr(training, "train", train)
    try:
        res = run_pipeline(cfg, path)
    finally:
        mp.undo()
    return {"res": res, "store": Store.open(str(path)), "threads": seen}


def test_training_settings_reach_every_training(run: dict[str, Any]) -> None:
    cat = Catalog(run["store"])
    assert run["res"].trainings
    for t in run["res"].trainings:
        rec = cat.get(t.training_id)
        for k in ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "seed", "device",
                  "standardize"):
            assert rec.config[k] == SETTINGS[k], k
        assert rec.seed == 7
        state = cat.load_checkpoint(t.training_id)  # raw inputs: the model's input scale stayed the identity
        assert bool((state["input_scale.shift"] == 0).all()) and bool((state["input_scale.scale"] == 1).all())
        assert int(rec.cost.samples) == 2 * rec.n_keys  # two epochs over the train set


def test_threads_setting_is_the_torch_thread_count_while_training(run: dict[str, Any]) -> None:
    assert run["threads"] and set(run["threads"]) == {2}
    for t in run["res"].trainings:
        assert Catalog(run["store"]).get(t.training_id).metrics["threads"] == 2


def test_model_params_shape_the_model(run: dict[str, Any]) -> None:
    state = Catalog(run["store"]).load_checkpoint(run["res"].trainings[0].training_id)
    assert any(v.ndim == 2 and v.shape[0] == 5 for v in state.values())  # the hidden layer of width 5


def test_max_trainings_stops_training(run: dict[str, Any]) -> None:
    assert len(run["res"].trainings) == 3  # the 7-day trigger fires more often over 2000 half-hours


def test_evaluation_slices_and_metric(run: dict[str, Any]) -> None:
    r = run["res"].result
    assert r.metric == "f1"
    assert np.array(r.matrix).shape == (3, 3)
    evals = run["store"].read_table("evaluations")
    assert evals is not None and set(evals.column("metric").to_pylist()) == {"f1"}


def test_source_limit_and_chunk(run: dict[str, Any]) -> None:
    store = run["store"]
    assert run["res"].rows == 2000 and store.as_of().count() == 2000
    ts = store.as_of().to_table(["ts"]).column("ts").to_numpy().astype(np.float64)
    appends = [r for r in store.log() if r.op == "append"]
    expected = np.unique(np.floor((ts - ts.min()) / (5 * 86400))).size
    assert len(appends) == expected and expected > 2


def test_min_train_rows_skips_small_train_sets(tmp_path: Path) -> None:
    cfg = parse_pipeline(tiny("few", source={"dataset": "elec2", "limit": 1500, "chunk": "7d"},
                              trigger={"name": "time", "every": "7d"}, limits={"min_train_rows": 400}))
    res = run_pipeline(cfg, tmp_path / "s")
    sizes = [t.n_keys for t in res.trainings]
    assert all(n >= 400 for n in sizes)
    base = run_pipeline(parse_pipeline(tiny("all", source={"dataset": "elec2", "limit": 1500, "chunk": "7d"},
                                            trigger={"name": "time", "every": "7d"})), tmp_path / "t")
    assert any(t.n_keys < 400 for t in base.trainings)  # without the limit a smaller set is trained on
    assert len(res.trainings) < len(base.trainings)
