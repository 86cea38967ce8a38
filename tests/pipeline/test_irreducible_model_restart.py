"""A pipeline restarted between recording a training's irreducible-loss model (RHO-LOSS) and the
training itself reuses the recorded model (``training.load_model``) instead of training it again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store import Store
from modyn_store.core.trainings import Catalog
from training.trainer import TrainConfig


def _rho_setup(tmp_path: Path, rows: int) -> tuple[Store, TrainConfig, Any, Any]:
    """A store of ``rows`` labelled 2-feature rows, a logistic-regression config, a RHO-LOSS
    strategy and a fresh model."""
    import policies
    from training.models import build_model

    store = Store.open(str(tmp_path / "s"), create=True)
    x = np.random.default_rng(0).standard_normal((rows, 2)).astype(np.float32)
    store.append(pa.table({"ts": np.arange(rows), "label": (x[:, 0] > 0).astype(np.int64),
                           "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
    cfg = TrainConfig(model="logreg", model_params={"in_features": 2, "n_classes": 2}, inputs={"features": "features"},
                      batch_size=32, seed=0)
    strategy = policies.from_config("selection", {"name": "rho_loss", "ratio": 0.5})
    return store, cfg, strategy, build_model("logreg", in_features=2, n_classes=2)


def test_the_irreducible_loss_model_recorded_before_a_restart_is_reused(tmp_path: Path) -> None:
    from modyn_store.app.pipeline.selection import SelectionRuntime
    from policies import SelectionContext

    store, cfg, strategy, module = _rho_setup(tmp_path, 300)
    ctx = SelectionContext(snapshot=store.as_of(None), scores=store.scores, seed=0)
    first = SelectionRuntime(store, {"features": "features"}, lambda mode: cfg, "p")
    a = first.prepare(strategy, ctx, module, "p-0001", (store.version, 300))
    trainings = [r.training_id for r in Catalog(store).list()]
    assert trainings == ["p-0001-irreducible"]
    again = SelectionRuntime(store, {"features": "features"}, lambda mode: cfg, "p")  # a restarted pipeline
    b = again.prepare(strategy, ctx, module, "p-0001", (store.version, 300))
    assert [r.training_id for r in Catalog(store).list()] == trainings  # not trained again
    assert again.lineage["irreducible_model"] == "p-0001-irreducible"
    ka, va = a.computed_scores["irreducible_loss"]
    kb, vb = b.computed_scores["irreducible_loss"]
    assert np.array_equal(ka, kb) and np.array_equal(va, vb)


def test_no_eligible_row_trains_no_irreducible_loss_model(tmp_path: Path) -> None:
    """A firing without eligible rows selects nothing (and is skipped): it trains no irreducible-loss
    model on an empty holdout (``training.train`` refuses an empty train set)."""
    from modyn_store.app.pipeline.selection import SelectionRuntime
    from policies import SelectionContext

    store, cfg, strategy, module = _rho_setup(tmp_path, 30)
    ctx = SelectionContext(snapshot=store.as_of(None), scores=store.scores, seed=0, excluded=store.as_of(None).keys())
    runtime = SelectionRuntime(store, {"features": "features"}, lambda mode: cfg, "p")
    prepared = runtime.prepare(strategy, ctx, module, "p-0001", (store.version, 30))
    assert Catalog(store).list() == [] and "irreducible_model" not in runtime.lineage
    assert strategy.select(prepared).size == 0
