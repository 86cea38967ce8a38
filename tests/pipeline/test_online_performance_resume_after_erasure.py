"""A performance trigger saves the labelled rows waiting for its next evaluation as their keys
(never feature values or labels), so a restart after an erasure of some of them goes on from the
saved state: the rows, labels included, are read back from the store, where the erased ones are
gone, and the trigger evaluates the same batches as an uninterrupted run that saw the same erasure
at the same point (it drops the erased rows from its pending batch when the erasure's version is
fed), training at the same cutoffs the same sets less the erased keys."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modyn_store import Store
from modyn_store.app.pipeline.history import pipeline_trainings
from modyn_store.app.pipeline.online import read_state
from modyn_store.core.trainings import Catalog

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from online_live import follow as _run  # noqa: E402
from online_live import grow as _grow  # noqa: E402
from online_live import live_config as _cfg  # noqa: E402

THRESHOLD = {"name": "performance", "columns": ["features"], "every": 60, "threshold": 0.9}
# saved with a past accuracy: a restart keeps the number, not the rows it came from
ROLLING = {"name": "performance", "columns": ["features"], "every": 35, "decision": "rolling_average",
           "threshold": 0.02, "history": 3}
# rows of the first train set and rows of the batch pending when the state was saved
ERASED = np.r_[20:40, 185:195]


def _trainings(store: Store) -> list[tuple[Any, ...]]:
    """Each training's id, cutoff (as the index of its data version), samples seen, reason,
    statistic, parent and train set."""
    cat = Catalog(store)
    data = [r.version for r in store.log() if r.inserted]
    return [(r.training_id, (data.index(r.cutoff[0]), r.cutoff[1]), r.trigger["seen"], r.trigger["reason"],
             r.trigger["statistic"], r.parent_id, sorted(cat.train_set(r.training_id).keys.tolist()))
            for r in pipeline_trainings(store)["live"]]


def _history(path: Path, trigger: dict[str, Any], restart: bool) -> tuple[Store, dict[str, Any]]:
    """Four versions followed, rows erased, eight more versions followed: by the same runner or
    by a new one on a newly opened store; with the trigger state saved before the erasure."""
    store = Store.open(str(path), create=True)
    _grow(store, 0, 4)
    runner = _run(store, trigger)
    saved = read_state(store, "live")
    assert saved is not None
    store.erase(ERASED, reason="request")
    _grow(store, 4, 12)
    _run(Store.open(str(path)), trigger) if restart else _run(store, trigger, runner)
    return store, saved[1]


@pytest.mark.parametrize("trigger", [THRESHOLD, ROLLING], ids=["threshold", "rolling_average"])
def test_a_performance_trigger_restarted_after_an_erasure_trains_as_the_uninterrupted_run(
        tmp_path: Path, trigger: dict[str, Any]) -> None:
    ref_store, _ = _history(tmp_path / "ref", trigger, restart=False)
    ref = _trainings(ref_store)
    store, state = _history(tmp_path / "s", trigger, restart=True)
    got = _trainings(store)
    assert got == ref  # same ids, cutoffs, samples seen, reasons, statistics, parents and train sets
    # and the same trigger state since (the uninterrupted run dropped the erased rows it held)
    ends = [read_state(s, "live")[1]["trigger"] for s in (ref_store, store)]
    assert ends[0] == ends[1]
    # the saved state names the pending rows by key and holds no feature value or label
    trig = state["trigger"]
    assert json.loads(json.dumps(trig)) == trig and set(trig) == {
        "params", "version", "pending", "seen", "bootstrapped", "past", "expect", "avoidable"}
    erased = set(ERASED.tolist())
    assert set(trig["pending"]) & erased  # the erasure took rows out of the restored batch
    assert trig["bootstrapped"] and got[0][3] == "no model yet"
    assert len(trig["past"]) == (trigger is ROLLING)  # past accuracies kept as numbers
    first = [t for t in got if t[1][0] < 4]
    assert erased & set(first[0][6])  # a training before the erasure used erased rows
    later = [t for t in got if t[1][0] >= 4]
    assert later and all(t[3].startswith("accuracy") for t in later)  # evaluations after the restart
    for t in later:
        assert not erased & set(t[6])
