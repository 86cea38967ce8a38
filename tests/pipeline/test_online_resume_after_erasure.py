"""A restart after an erasure of rows the run had already seen goes on from the state saved with
its last progress row (the trigger's state as plain data, the trainings' cutoffs, the erased keys):
it trains at the same cutoffs as an uninterrupted run that saw the same erasure at the same point,
and no erased key is in a later train set. Triggers without such a state (a user trigger whose
``state()`` is ``None``, and composites with it) still stop, as a restart that feeds every version
again would shift them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from modyn_store import Store
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.history import pipeline_trainings
from modyn_store.app.pipeline.online import read_progress, read_state
from modyn_store.core.trainings import Catalog
from policies import REGISTRY, Firing, Trigger, TriggerInput

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from online_live import follow as _run  # noqa: E402
from online_live import grow as _grow  # noqa: E402
from online_live import live_config as _cfg  # noqa: E402

ERASED = np.arange(90, 120)  # rows in the first train set (all_data: every row up to its cutoff)
AMOUNT = {"name": "data_amount", "every": 130}
TIME = {"name": "time", "every": 120, "start": 0}


def _trainings(store: Store) -> list[tuple[Any, ...]]:
    """Each training's id, cutoff (as the index of its data or erasure version: the catalog's
    versions in between depend on when runs committed), samples seen, parent and train set."""
    cat = Catalog(store)
    data = [r.version for r in store.log() if r.inserted or r.op == "erase"]
    return [(r.training_id, (data.index(r.cutoff[0]), r.cutoff[1]), r.trigger["seen"], r.parent_id,
             sorted(cat.train_set(r.training_id).keys.tolist())) for r in pipeline_trainings(store)["live"]]


def _history(path: Path, trigger: dict[str, Any], restart: bool) -> Store:
    """Four versions followed, rows of the first train set erased, four more versions followed: by
    the same runner (``restart=False``) or by a new one on a newly opened store."""
    store = Store.open(str(path), create=True)
    _grow(store, 0, 4)
    runner = _run(store, trigger)
    assert len(runner.loop.trainings) == 1
    store.erase(ERASED, reason="request")
    _grow(store, 4, 8)
    if restart:
        _run(Store.open(str(path)), trigger)
    else:
        _run(store, trigger, runner)
    return store


@pytest.mark.parametrize("trigger", [AMOUNT, TIME, {"name": "at_least", "n": 2, "triggers": [AMOUNT, TIME]},
                                     # the deletion trigger counts the erasure after the restart too
                                     {"name": "any", "triggers": [AMOUNT, {"name": "deletion", "share": 0.2}]}],
                         ids=["data_amount", "time", "at_least", "any_deletion"])
def test_a_restart_after_an_erasure_trains_as_the_uninterrupted_run(tmp_path: Path, trigger: dict[str, Any]) -> None:
    ref = _trainings(_history(tmp_path / "ref", trigger, restart=False))
    got = _trainings(_history(tmp_path / "s", trigger, restart=True))
    assert len(ref) >= 3
    assert got == ref  # same ids, cutoffs, samples seen, parents and train sets
    erased = set(ERASED.tolist())
    assert erased <= set(got[0][4])  # the first training used the erased rows
    for _, _, _, parent, keys in got[1:]:
        assert not erased & set(keys)
    assert got[1][3] is None  # deletion_aware_retrain: the erasure made the next training retrain


def test_the_state_is_plain_json_saved_with_the_progress_row(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    _grow(store, 0, 4)
    _run(store, AMOUNT)
    saved = read_state(store, "live")
    assert saved is not None
    version, state = saved
    assert version == read_progress(store, "live")["processed_version"] == store.log()[-1].version - 1
    assert json.loads(json.dumps(state)) == state
    assert state["trigger"] == {"params": {"name": "data_amount", "every": 130}, "seen": 200} and state["trainings"] == 1 and state["seen_rows"] == 200


class _Stateless(Trigger):
    """A user trigger that keeps no plain-data state (``state()`` is the default ``None``): fires
    after every ``every`` rows."""

    name = "test_stateless_amount"

    def __init__(self, every: int = 100) -> None:
        self.every = every
        self._seen = 0

    def _fire(self, delta: TriggerInput, model: Any) -> list[Firing]:
        first = self.every - self._seen % self.every
        out = [delta.firing(end, "every", trigger=self.name, seen=self._seen + end)
               for end in range(first, len(delta) + 1, self.every)]
        self._seen += len(delta)
        return out


def test_a_trigger_without_a_plain_state_still_stops_after_an_erasure(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # a user trigger without a state() is rebuilt by feeding every version again, and so is a
    # composite with one among its sub-triggers
    monkeypatch.setitem(REGISTRY["trigger"], _Stateless.name, _Stateless)
    trigger = {"name": "any", "triggers": [AMOUNT, {"name": _Stateless.name, "every": 100}]}
    path = tmp_path / "s"
    store = Store.open(str(path), create=True)
    _grow(store, 0, 4)
    _run(store, trigger)
    assert read_state(store, "live") is None
    store.erase(ERASED, reason="request")
    with pytest.raises(PipelineConfigError, match=r"had seen \d+ rows up to version \d+ .* hold \d+ rows.*it "
                                                  "saved no state to go on from"):
        _run(Store.open(str(path)), trigger)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def test_a_sigkilled_run_restarts_after_an_erasure(tmp_path: Path) -> None:
    ref = _trainings(_history(tmp_path / "ref", AMOUNT, restart=False))
    path = tmp_path / "s"
    store = Store.open(str(path), create=True)
    _grow(store, 0, 4)
    cfg = tmp_path / "live.yaml"
    cfg.write_text(yaml.safe_dump(_cfg(AMOUNT)))
    log = tmp_path / "live.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "modyn_store.app.cli.main", "run", str(cfg), "--online",
                                 "--store", str(path), "--poll", "0.05", "--idle-timeout", "120"],
                                cwd=REPO, env=_env(), stdout=fh, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 120
        # the progress row (and state) committed after its first training, at version 3
        while (read_progress(store, "live") or {}).get("trainings", 0) < 1:
            assert proc.poll() is None and time.monotonic() < end, log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # no stop: versions after that progress row are fed again
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    store.erase(ERASED, reason="request")
    _grow(store, 4, 8)
    _run(Store.open(str(path)), AMOUNT)
    assert _trainings(store) == ref


def test_a_state_that_does_not_match_the_catalog_or_the_trigger_is_refused(tmp_path: Path) -> None:
    from modyn_store.app.pipeline.loop import PipelineLoop

    store = Store.open(str(tmp_path / "s"), create=True)
    _grow(store, 0, 4)
    runner = _run(store, AMOUNT)
    _, state = read_state(store, "live")
    two = {**state, "trainings": 2, "cutoffs": state["cutoffs"] * 2}
    other = {**state, "trigger_config": {"name": "data_amount", "every": 7}}
    for bad, match in ((two, "'live-0001' is not in the catalog"), (other, "is that of the trigger"),
                       ({**state, "trainings": 2}, "2 trainings but 1 cutoffs")):
        loop = PipelineLoop(runner.config, store, model_params=runner.loop.model_params)
        with pytest.raises(PipelineConfigError, match=match):
            loop.restore(bad)
    # a loop that was fed already does not take a state
    with pytest.raises(PipelineConfigError, match="before it is fed"):
        runner.loop.restore(state)


def test_a_restart_with_another_trigger_after_an_erasure_names_the_saved_trigger(tmp_path: Path) -> None:
    # the run saved a state, but for another trigger configuration under this name: the refusal
    # says so instead of claiming no state was saved
    path = tmp_path / "s"
    store = Store.open(str(path), create=True)
    _grow(store, 0, 4)
    _run(store, AMOUNT)
    assert read_state(store, "live") is not None
    store.erase(ERASED, reason="request")
    with pytest.raises(PipelineConfigError, match="hold 120 rows.*the state it saved .* is that of the trigger "
                                                  ".*'every': 130.*not of this configuration's") as err:
        _run(Store.open(str(path)), {"name": "data_amount", "every": 150})
    assert "saved no state" not in str(err.value)


def test_a_deletion_trigger_fires_on_the_erasure_after_a_restart(tmp_path: Path) -> None:
    trigger = {"name": "any", "triggers": [AMOUNT, {"name": "deletion", "share": 0.2}]}
    got = _trainings(_history(tmp_path / "s", trigger, restart=True))
    # the erasure removed 30 of the first train set's 130 keys: the restarted trigger fires on it
    assert [t[1] for t in got[:2]] == [(2, 30), (4, 0)]  # the erasure is the fifth such version


@pytest.mark.parametrize("trigger", [TIME, {"name": "at_least", "n": 2, "triggers": [AMOUNT, TIME]}],
                         ids=["time", "at_least"])
def test_a_saved_trigger_state_without_its_parameters_is_resumed_under_the_same_configuration(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trigger: dict[str, Any]) -> None:
    # a state saved in the format before trigger states recorded their parameters: the pipeline's
    # saved trigger configuration is the one resumed, so the state is that trigger's and resumes it
    # (after an erasure, where feeding every version again would fire elsewhere)
    ref = _trainings(_history(tmp_path / "ref", trigger, restart=False))
    from modyn_store.app.pipeline import online

    saved = online.read_state

    def bare(state: Any) -> Any:
        if isinstance(state, list):
            return [bare(v) for v in state]
        return {k: bare(v) for k, v in state.items() if k != "params"} if isinstance(state, dict) else state

    def read(store: Store, name: str) -> Any:
        got = saved(store, name)
        return None if got is None else (got[0], {**got[1], "trigger": bare(got[1]["trigger"])})

    path = tmp_path / "s"
    store = Store.open(str(path), create=True)
    _grow(store, 0, 4)
    _run(store, trigger)
    store.erase(ERASED, reason="request")
    _grow(store, 4, 8)
    monkeypatch.setattr(online, "read_state", read)
    runner = _run(Store.open(str(path)), trigger)
    assert runner._unused_state is None
    assert _trainings(store) == ref
