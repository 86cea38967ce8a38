"""A resumed online pipeline selects what an uninterrupted one selects: a stateful strategy's
state (GDumb's memory) and firings skipped before the restart are replayed, not lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store import Store
from modyn_store.app.pipeline import parse_pipeline
from modyn_store.app.pipeline.online import OnlineRunner
from modyn_store.core.trainings import Catalog


def _store(path: Path, rows: int) -> Store:
    store = Store.open(str(path), create=True)
    rng = np.random.default_rng(0)
    for i in range(5):
        x = rng.standard_normal((rows, 2)).astype(np.float32)
        store.append(pa.table({"ts": np.arange(rows * i, rows * (i + 1)), "label": (x[:, 0] > 0.5).astype(np.int64),
                               "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
    return store


def _cfg(**over: Any) -> Any:
    return parse_pipeline({"name": "live", "source": {"dataset": "elec2"},
                           "model": {"name": "logreg", "params": {"n_classes": 2}},
                           "training": {"epochs": 1}, **over})


def _train_sets(store: Store) -> dict[str, list[int]]:
    cat = Catalog(store)
    return {r.training_id: sorted(cat.train_set(r.training_id).keys.tolist()) for r in cat.list()}


def _both(tmp_path: Path, cfg: Any, rows: int) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    whole = _store(tmp_path / "whole", rows)
    OnlineRunner(cfg, whole, poll=0.01).run(idle_timeout=0.05)
    cut = _store(tmp_path / "cut", rows)
    OnlineRunner(cfg, cut, poll=0.01).run(stop_after=3)
    OnlineRunner(cfg, Store.open(str(tmp_path / "cut")), poll=0.01).run(idle_timeout=0.05)
    return _train_sets(whole), _train_sets(Store.open(str(tmp_path / "cut")))


def test_gdumb_memory_survives_a_restart(tmp_path: Path) -> None:
    cfg = _cfg(trigger={"name": "data_amount", "every": 60}, selection={"name": "gdumb", "memory": 40},
               update={"name": "retrain"})
    whole, resumed = _both(tmp_path, cfg, 60)
    assert len(whole) == 5
    assert resumed == whole


def test_firing_skipped_before_a_restart_is_skipped_again(tmp_path: Path) -> None:
    # every other firing has fewer rows than min_train_rows since the last training
    cfg = _cfg(trigger={"name": "data_amount", "every": 30}, selection={"name": "new_data"},
               limits={"min_train_rows": 50})
    whole, resumed = _both(tmp_path, cfg, 30)
    assert len(whole) == 2
    assert resumed == whole
