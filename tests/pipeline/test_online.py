"""Online mode end to end: a writer process and a pipeline process on one store; the pipeline is
killed (SIGKILL) mid-run and restarted, and must neither lose nor repeat a trigger."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from modyn_store import Store
from modyn_store.core.trainings import Catalog
from modyn_store.app.pipeline import OnlineRunner, parse_pipeline
from modyn_store.app.pipeline.history import pipeline_trainings
from modyn_store.app.pipeline.online import read_progress

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VERSIONS, ROWS = 16, 50


def _pipeline(name: str) -> dict:
    return {
        "name": name,
        "source": {"dataset": "elec2"},
        "model": {"name": "logreg", "params": {"n_classes": 2}},
        "trigger": {"name": "data_amount", "every": 130},
        "selection": {"name": "new_data"},
        "update": {"name": "finetune"},
        "training": {"epochs": 1, "batch_size": 64, "lr": 0.05},
    }


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _pipeline_proc(cfg: Path, store: Path, log: Path) -> subprocess.Popen:
    with log.open("w") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "modyn_store.app.cli.main", "run", str(cfg), "--online", "--store", str(store),
             "--poll", "0.05", "--idle-timeout", "120"],
            cwd=REPO, env=_env(), stdout=fh, stderr=subprocess.STDOUT)


def _wait(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _cutoffs(store: Store, name: str) -> list[tuple[int, int]]:
    return [r.cutoff for r in pipeline_trainings(store).get(name, [])]


def test_kill_and_restart_neither_loses_nor_repeats_a_trigger(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store = Store.open(str(path), create=True)
    cfg = tmp_path / "live.yaml"
    cfg.write_text(yaml.safe_dump(_pipeline("live")))
    writer = subprocess.Popen([sys.executable, str(HERE / "online_writer.py"), str(path), str(VERSIONS), str(ROWS),
                               "0.4"], cwd=REPO, env=_env())
    live = _pipeline_proc(cfg, path, tmp_path / "live-1.log")
    try:
        _wait(lambda: len(_cutoffs(store, "live")) >= 1, 120, "a first training")
        live.send_signal(signal.SIGKILL)
        live.wait(30)
        killed_at = len(_cutoffs(store, "live"))
        assert killed_at >= 1
        live = _pipeline_proc(cfg, path, tmp_path / "live-2.log")
        _wait(lambda: "following" in (tmp_path / "live-2.log").read_text(), 120, "the restarted pipeline to start")
        assert writer.wait(120) == 0
        data_versions = [r.version for r in store.log() if r.inserted]
        assert len(data_versions) == VERSIONS
        # the uninterrupted reference: the same pipeline under another name, in this process
        ref = OnlineRunner(parse_pipeline(_pipeline("ref")), Store.open(str(path)), poll=0.01)
        ref.run(idle_timeout=0.5)
        expected = [t.cutoff for t in ref.loop.trainings]
        assert len(expected) == VERSIONS * ROWS // 130 >= 5
        _wait(lambda: len(_cutoffs(store, "live")) >= len(expected), 120, "the restarted pipeline to catch up")
        live.send_signal(signal.SIGTERM)
        assert live.wait(60) == 0, (tmp_path / "live-2.log").read_text()
        assert "stopped at version" in (tmp_path / "live-2.log").read_text()
    finally:
        for p in (writer, live):
            if p.poll() is None:
                p.kill()
                p.wait()
    got = _cutoffs(store, "live")
    assert got == expected  # same trigger positions, none lost, none repeated
    recs = pipeline_trainings(store)["live"]
    assert [r.training_id for r in recs] == [f"live-{i:04d}" for i in range(len(expected))]
    assert [r.trigger["seen"] for r in recs] == [130 * (i + 1) for i in range(len(expected))]
    parents = [r.parent_id for r in recs]
    assert parents == [None] + [r.training_id for r in recs[:-1]]
    cat = Catalog(store)
    ref_sets = [cat.train_set(f"ref-{i:04d}").keys.tolist() for i in range(len(expected))]
    assert [cat.train_set(r.training_id).keys.tolist() for r in recs] == ref_sets
    progress = read_progress(store, "live")
    assert progress is not None and progress["processed_version"] >= data_versions[-1]
    assert progress["trainings"] == len(expected)
