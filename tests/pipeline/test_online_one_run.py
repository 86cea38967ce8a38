"""One run per pipeline and store: a second run of the same pipeline is refused at once (it would
train the same firings and race to record them), a run killed with SIGKILL leaves no lock behind;
and a restart resumes the model the first run built, whatever classes arrived since."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml

from modyn_store import Store
from modyn_store.app.datasets.columns import ColumnMap
from modyn_store.app.datasets.user import append_stream
from modyn_store.app.pipeline import parse_pipeline
from modyn_store.app.pipeline.history import pipeline_trainings
from modyn_store.app.pipeline.online import OnlineRunner
from modyn_store.core.errors import ConflictError

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from online_writer import batch  # noqa: E402


def _cfg(name: str = "live") -> dict:
    return {"name": name, "source": {"dataset": "elec2"}, "model": {"name": "logreg", "params": {"n_classes": 2}},
            "trigger": {"name": "data_amount", "every": 130}, "training": {"epochs": 1, "batch_size": 64}}


def _filled(path: Path, versions: int = 6) -> Store:
    store = Store.open(str(path), create=True)
    for i in range(versions):
        store.append(batch(i, 50))
    return store


def test_a_second_runner_of_the_same_pipeline_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    store = _filled(tmp_path / "s")
    first = OnlineRunner(parse_pipeline(_cfg()), store, poll=0.01)
    refused: list[BaseException] = []

    def second() -> None:
        try:
            OnlineRunner(parse_pipeline(_cfg()), Store.open(str(tmp_path / "s")), poll=0.01).run(idle_timeout=0)
        except ConflictError as exc:
            refused.append(exc)
        # another pipeline name on the same store is not held back
        assert OnlineRunner(parse_pipeline(_cfg("other")), store, poll=0.01).run(idle_timeout=0) == 2

    assert first.run(idle_timeout=0, on_start=second) == 2
    assert len(refused) == 1 and "pipeline 'live' is already running" in str(refused[0])
    assert [r.training_id for r in pipeline_trainings(store)["live"]] == ["live-0000", "live-0001"]
    # the lock goes with the run: a later run adopts the two trainings
    again = OnlineRunner(parse_pipeline(_cfg()), Store.open(str(tmp_path / "s")), poll=0.01)
    assert again.run(idle_timeout=0) == 0 and len(again.loop.trainings) == 2


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _cli(cfg: Path, store: Path, log: Path, idle: str) -> subprocess.Popen:
    with log.open("w") as fh:
        return subprocess.Popen([sys.executable, "-m", "modyn_store.app.cli.main", "run", str(cfg), "--online",
                                 "--store", str(store), "--poll", "0.05", "--idle-timeout", idle],
                                cwd=REPO, env=_env(), stdout=fh, stderr=subprocess.STDOUT)


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while text not in log.read_text():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < end, f"timed out waiting for {text!r}: {log.read_text()}"
        time.sleep(0.05)


def test_two_processes_on_one_pipeline_one_refused_and_sigkill_frees_the_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = _filled(path)
    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump(_cfg()))
    first = _cli(cfg, path, tmp_path / "1.log", "600")
    try:
        _wait_for(tmp_path / "1.log", "following", first)  # printed once the run holds the pipeline
        second = _cli(cfg, path, tmp_path / "2.log", "600")
        assert second.wait(60) == 2
        out = (tmp_path / "2.log").read_text()
        assert "pipeline 'live' is already running on this store" in out and f"process {first.pid}" in out, out
        assert "following" not in out
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    third = _cli(cfg, path, tmp_path / "3.log", "0")  # the killed run held nothing after its death
    assert third.wait(120) == 0, (tmp_path / "3.log").read_text()
    assert [r.training_id for r in pipeline_trainings(store)["live"]] == ["live-0000", "live-0001"]


def test_a_step_beside_a_running_process_of_the_pipeline_is_refused(tmp_path: Path) -> None:
    """``OnlineRunner.step()`` called outside ``run()`` (a resume by hand) holds the pipeline too:
    beside a running process of it, it is refused before it reads or trains anything."""
    path = tmp_path / "s"
    _filled(path)
    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump(_cfg()))
    first = _cli(cfg, path, tmp_path / "1.log", "600")
    try:
        _wait_for(tmp_path / "1.log", "following", first)
        runner = OnlineRunner(parse_pipeline(_cfg()), Store.open(str(path)), poll=0.01)
        try:
            runner.step()
        except ConflictError as exc:
            assert f"process {first.pid}" in str(exc)
        else:
            raise AssertionError("a step beside a running process of the pipeline was not refused")
        assert runner.loop is None and runner.processed == 0
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    runner = OnlineRunner(parse_pipeline(_cfg()), Store.open(str(path)), poll=0.01)
    runner.step()  # the lock went with the killed process
    assert [t.training_id for t in runner.loop.trainings] == ["live-0000", "live-0001"]


def _labelled(i: int, labels: np.ndarray, t0: int) -> pa.Table:
    x = np.random.default_rng(i).standard_normal((labels.size, 2))
    return pa.table({"t": np.arange(t0, t0 + labels.size), "y": labels, "a": x[:, 0], "b": x[:, 1]})


def test_a_restart_keeps_the_class_count_of_the_first_run(tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = Store.open(str(path), create=True)
    cmap = ColumnMap(ts="t", label="y")
    for i in range(2):
        append_stream(store, _labelled(i, np.array(["up", "down"] * 200), 400 * i), cmap)
    cfg = parse_pipeline({"name": "live", "source": {"store": str(path)}, "model": {"name": "logreg"},
                          "trigger": {"name": "data_amount", "every": 600}})
    first = OnlineRunner(cfg, store, poll=0.01)
    assert first.run(idle_timeout=0) == 1 and first.loop.model_params["n_classes"] == 2
    # a new class arrives in late rows (event times before the model's cutoff: not in its
    # next-slice evaluation), too few to fire
    append_stream(store, _labelled(2, np.array(["up", "down", "flat"] * 10), 0), cmap)
    assert first.run(idle_timeout=0) == 0  # the uninterrupted run goes on with its model
    restarted = OnlineRunner(cfg, Store.open(str(path)), poll=0.01)
    assert restarted.run(idle_timeout=0) == 0  # adopts live-0000, instead of refusing a "changed configuration"
    assert restarted.loop.model_params == first.loop.model_params
    assert [t.training_id for t in restarted.loop.trainings] == ["live-0000"]


def test_a_restart_after_an_erasure_of_rows_it_had_seen_goes_on_from_its_saved_state(tmp_path: Path) -> None:
    def grow(store: Store, a: int, b: int) -> None:
        for i in range(a, b):
            store.append(batch(i, 50))

    def history(path: Path) -> tuple[Store, OnlineRunner]:
        """Four versions followed, 20 rows the runner counted erased and followed, two more versions."""
        store = Store.open(str(path), create=True)
        grow(store, 0, 4)
        runner = OnlineRunner(parse_pipeline(_cfg()), store, poll=0.01)
        runner.run(idle_timeout=0)
        store.erase(np.arange(150, 170), reason="request")
        runner.run(idle_timeout=0)
        grow(store, 4, 6)
        return store, runner

    # uninterrupted: rows erased after the trigger counted them still count
    ref, live = history(tmp_path / "ref")
    live.run(idle_timeout=0)
    assert [r.trigger["seen"] for r in pipeline_trainings(ref)["live"]] == [130, 260]
    # the same store history with a restart after the erasure: a trigger rebuilt from the versions
    # would count 20 rows fewer and fire 20 rows later; the restart goes on from the trigger's
    # state saved with the last progress row instead (see test_online_resume_after_erasure.py)
    path = tmp_path / "s"
    store, _ = history(path)
    restarted = OnlineRunner(parse_pipeline(_cfg()), Store.open(str(path)), poll=0.01)
    assert restarted.run(idle_timeout=0) == 1
    assert [(r.cutoff, r.trigger["seen"]) for r in pipeline_trainings(store)["live"]] == \
        [(r.cutoff, r.trigger["seen"]) for r in pipeline_trainings(ref)["live"]]


def test_a_step_from_another_thread_than_run_is_refused(tmp_path: Path) -> None:
    """``run()`` holds the pipeline's lock and its own steps skip taking it again; that was a flag
    of the runner, so a ``step()`` from another thread of the process, while ``run()`` was inside
    a step, skipped the lock too and trained the same firings beside it."""
    import threading

    path = tmp_path / "s"
    _filled(path)
    runner = OnlineRunner(parse_pipeline(_cfg()), Store.open(str(path)), poll=0.05)
    inside, release = threading.Event(), threading.Event()

    def on_training(info: object) -> None:
        inside.set()
        release.wait(60)

    runner.on_training = on_training
    worker = threading.Thread(target=lambda: runner.run(idle_timeout=1.0))
    worker.start()
    try:
        assert inside.wait(120)
        with pytest.raises(ConflictError, match="'live'"):
            runner.step()
    finally:
        release.set()
        runner.on_training = None
        worker.join(120)
    assert not worker.is_alive()


def test_online_dlrm_takes_the_model_defaults_a_replay_takes(tmp_path: Path) -> None:
    from modyn_store.app.pipeline import run_pipeline

    dlrm = {"name": "dlrm", "params": {"embedding_dim": 4, "bottom": [8], "top": [8]},
            "inputs": {"dense": "dense", "sparse": "sparse"}}
    replay = {"name": "replay", "model": dlrm, "trigger": {"name": "data_amount", "every": 100},
              "source": {"dataset": "synthetic_clicks", "params": {"n_rows": 200, "n_days": 2, "seed": 0},
                         "encode": "clicks", "chunk": "ts:1"},
              "training": {"epochs": 1, "batch_size": 64}, "evaluation": {"slices": 2, "metric": "roc_auc"}}
    path = tmp_path / "s"
    run_pipeline(parse_pipeline(replay), str(path))
    # the same model section over the replayed store: n_dense and cardinalities left out, as above
    cfg = parse_pipeline({**replay, "name": "live", "source": {"store": str(path)}})
    runner = OnlineRunner(cfg, Store.open(str(path)), poll=0.01)
    assert runner.run(idle_timeout=0) == 2
    assert runner.loop.model_params["n_dense"] == 13 and len(runner.loop.model_params["cardinalities"]) == 26
