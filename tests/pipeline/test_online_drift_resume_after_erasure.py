"""A data_drift trigger saves its windows as the keys of their rows (never feature values), so a
restart after an erasure of rows in those windows goes on from the saved state: the rows are read
back from the store, where the erased ones are gone, and the trigger fires where an uninterrupted
run that saw the same erasure at the same point fires (its windows drop the erased rows when the
erasure's version is fed), training the same sets less the erased keys."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from modyn_store import Store
from modyn_store.app.pipeline.history import pipeline_trainings
from modyn_store.app.pipeline.online import OnlineRunner, read_state
from modyn_store.core.trainings import Catalog

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from online_live import follow, live_config  # noqa: E402
from online_live import grow as _grow  # noqa: E402

DRIFT = {"name": "data_drift", "columns": ["features"], "metric": "mean_shift", "decision": "threshold",
         "threshold": 0.6, "window": 40, "every": 20, "warmup": 10,
         "warmup_trigger": {"name": "data_amount", "every": 130}}
# rows of the first train set, some in the drift windows saved with the state
ERASED = np.r_[90:120, 165:195]


def _cfg() -> dict[str, Any]:
    return live_config(DRIFT)


def _run(store: Store, runner: OnlineRunner | None = None) -> OnlineRunner:
    return follow(store, DRIFT, runner)


def _trainings(store: Store) -> list[tuple[Any, ...]]:
    """Each training's id, cutoff (as the index of its data version), samples seen, reason,
    parent and train set."""
    cat = Catalog(store)
    data = [r.version for r in store.log() if r.inserted]
    return [(r.training_id, (data.index(r.cutoff[0]), r.cutoff[1]), r.trigger["seen"], r.trigger["reason"],
             r.parent_id, sorted(cat.train_set(r.training_id).keys.tolist())) for r in pipeline_trainings(store)["live"]]


def _history(path: Path, restart: bool) -> tuple[Store, dict[str, Any]]:
    """Four versions followed, rows erased, eight more versions followed: by the same runner or
    by a new one on a newly opened store; with the trigger state saved before the erasure."""
    store = Store.open(str(path), create=True)
    _grow(store, 0, 4)
    runner = _run(store)
    saved = read_state(store, "live")
    assert saved is not None
    store.erase(ERASED, reason="request")
    _grow(store, 4, 12)
    _run(Store.open(str(path))) if restart else _run(store, runner)
    return store, saved[1]


def test_a_drift_trigger_restarted_after_an_erasure_trains_as_the_uninterrupted_run(tmp_path: Path) -> None:
    ref_store, _ = _history(tmp_path / "ref", restart=False)
    ref = _trainings(ref_store)
    store, state = _history(tmp_path / "s", restart=True)
    got = _trainings(store)
    assert got == ref  # same ids, cutoffs, samples seen, reasons, parents and train sets
    # and the same statistics since (the uninterrupted run's windows dropped the erased rows)
    ends = [read_state(s, "live")[1]["trigger"] for s in (ref_store, store)]
    assert [{k: v for k, v in e.items() if k != "version"} for e in ends] == \
        [{k: v for k, v in ends[1].items() if k != "version"}] * 2
    # the saved state names the windows' rows by key and holds no feature value (the column's
    # name is in the trigger's parameters only)
    trig = state["trigger"]
    rest = {k: v for k, v in trig.items() if k != "params"}
    assert json.loads(json.dumps(trig)) == trig and "features" not in json.dumps(rest)
    assert trig["params"]["columns"] == ["features"]
    held = set(trig["window"]) | set(trig["reference"] or [])
    erased = set(ERASED.tolist())
    assert held & erased  # the erasure took rows out of the restored windows
    assert 0 < trig["evals"] < DRIFT["warmup"]  # saved during the warm-up, which ends after the restart
    first = [t for t in got if t[1][0] < 4]
    assert first and all(t[3].startswith("warm-up") for t in first)
    assert erased & set(first[0][5])  # a training before the erasure used erased rows
    later = [t for t in got if t[1][0] >= 4]
    assert any(t[3].startswith("drift") for t in later)  # drift firings after the restart
    for t in later:
        assert not erased & set(t[5])
