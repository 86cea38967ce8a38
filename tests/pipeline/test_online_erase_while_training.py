"""An erasure committed by another process between a firing's selection and its training (the
runner follows a live store while an operator erases rows) does not stop the run: the selection is
made again, without the erased rows, as a restart would make it, and no erased key is in the
recorded train set."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import training
from modyn_store import Store
from modyn_store.app.pipeline import parse_pipeline
from modyn_store.app.pipeline.history import pipeline_trainings
from modyn_store.app.pipeline.online import OnlineRunner
from modyn_store.core.trainings import Catalog

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from online_writer import batch  # noqa: E402

ERASED = np.arange(10, 20)  # rows of both train sets (all_data)
CFG = {"name": "live", "source": {"dataset": "elec2"}, "model": {"name": "logreg", "params": {"n_classes": 2}},
       "trigger": {"name": "data_amount", "every": 130}, "selection": {"name": "all_data"},
       "update": {"name": "deletion_aware_retrain"}, "training": {"epochs": 1, "batch_size": 64}}


def _grow(path: Path) -> None:
    store = Store.open(str(path), create=True)
    for i in range(6):
        store.append(batch(i, 50))


def _trainings(path: Path) -> list[tuple[Any, ...]]:
    store = Store.open(str(path))
    cat = Catalog(store)
    return [(r.training_id, tuple(r.cutoff), sorted(cat.train_set(r.training_id).keys.tolist()))
            for r in pipeline_trainings(store)["live"]]


def test_erasure_between_selection_and_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    racing, restarted = tmp_path / "racing", tmp_path / "restarted"
    _grow(racing)
    _grow(restarted)
    real = training.train
    calls: list[int] = []

    def erase_first(store: Any, train_set: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(int(train_set.size))
        if len(calls) == 2:  # the operator's erasure lands after the second selection
            Store.open(str(racing)).erase(ERASED, reason="request")
        return real(store, train_set, *args, **kwargs)

    monkeypatch.setattr(training, "train", erase_first)
    OnlineRunner(parse_pipeline(CFG), Store.open(str(racing)), poll=0.01).run(idle_timeout=0)
    monkeypatch.setattr(training, "train", real)
    got = _trainings(racing)
    assert [t[0] for t in got] == ["live-0000", "live-0001"]
    assert calls == [130, 260, 250]  # selected again without the 10 erased rows
    assert not np.isin(ERASED, got[1][2]).any()

    # the same as a run that selected after the erasure: stopped after the first training, restarted
    OnlineRunner(parse_pipeline(CFG), Store.open(str(restarted)), poll=0.01).run(stop_after=3)
    Store.open(str(restarted)).erase(ERASED, reason="request")
    OnlineRunner(parse_pipeline(CFG), Store.open(str(restarted)), poll=0.01).run(idle_timeout=0)
    want = _trainings(restarted)
    assert [(t[0], t[2]) for t in got] == [(t[0], t[2]) for t in want]
    assert got[1][1][1] == want[1][1][1]  # same firing position (versions differ by the erasure's)
