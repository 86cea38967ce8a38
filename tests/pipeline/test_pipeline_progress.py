"""``training.save_every``: an online pipeline killed in the middle of a training goes on from that
training's last saved batch and ends with the models of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from online_live import grow, live_config

from modyn_store import Store
from modyn_store.app.pipeline import OnlineRunner, parse_pipeline
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.core.trainings import Catalog
from training.progress import saved_progress
from training.trainer import state_equal

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VERSIONS = 12


def _config(save_every: int) -> dict[str, Any]:
    cfg = live_config({"name": "data_amount", "every": 130})
    cfg["training"] = {"epochs": 2, "batch_size": 32, "save_every": save_every}
    return cfg


def _follow(path: Path, save_every: int) -> Store:
    store = Store.open(str(path))
    OnlineRunner(parse_pipeline(_config(save_every)), store, poll=0.01).run(idle_timeout=0)
    return store


def _models(store: Store) -> dict[str, dict[str, torch.Tensor]]:
    cat = Catalog(store)
    return {r.training_id: cat.load_checkpoint(r.training_id) for r in cat.list() if r.training_id.startswith("live-")}


def test_a_pipeline_killed_mid_training_goes_on_from_its_progress(tmp_path: Path) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for path in (whole, killed):
        grow(Store.open(str(path), create=True), 0, VERSIONS)
    expected = _models(_follow(whole, 0))
    assert len(expected) >= 3
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(HERE)!r})
        from online_live import live_config
        import training.progress as tp
        from modyn_store import Store
        from modyn_store.app.pipeline import OnlineRunner, parse_pipeline
        from test_pipeline_progress import _config

        real, saves = tp.Progress.save, []
        def save(self, *args, **kwargs):
            real(self, *args, **kwargs)
            if self.training_id == "live-0002":
                saves.append(1)
                if len(saves) == 3:  # part way through the third training
                    os.kill(os.getpid(), signal.SIGKILL)
        tp.Progress.save = save
        OnlineRunner(parse_pipeline(_config(4)), Store.open({str(killed)!r}), poll=0.01).run(idle_timeout=0)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=300, cwd=REPO)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-3000:]
    store = Store.open(str(killed))
    saved = saved_progress(store, "live-0002")
    assert saved is not None and saved["batch"] == 12  # three saves, every 4 batches
    assert sorted(_models(store)) == ["live-0000", "live-0001"]  # the third was not recorded
    got = _models(_follow(killed, 4))
    assert sorted(got) == sorted(expected)
    for tid in expected:
        assert state_equal(expected[tid], got[tid]) == [], tid
    rec = Catalog(store).get("live-0002")
    assert rec.metrics["resumed_from"] == [saved["epoch"], saved["batch"]]
    assert saved_progress(store, "live-0002") is None
    assert not [p for p in Path(store.path("models")).iterdir() if "progress" in p.name]
    # a kill between a training's record and the removal of its progress: the restart, which
    # adopts the training, removes what was left
    Path(store.path("models/live-0001.progress.json")).write_text(
        '{"uri": "models/live-0001.0123456789ab.pt.zst", "sha256": "0", "fingerprint": "f", "epoch": 0, "batch": 4}')
    Path(store.path("models/live-0001.0123456789ab.pt.zst")).write_bytes(b"left")
    _follow(killed, 4)
    assert not [p for p in Path(store.path("models")).iterdir() if p.name.startswith("live-0001.") and
                ("progress" in p.name or "0123456789ab" in p.name)]


def test_a_progress_of_another_train_set_starts_over(tmp_path: Path) -> None:
    """A progress saved for a train set that is no longer the one selected (e.g. selected again
    after an erasure) is removed and the training starts over, instead of stopping the run."""
    path = tmp_path / "s"
    grow(Store.open(str(path), create=True), 0, VERSIONS)
    store = Store.open(str(path))
    Path(store.path("models")).mkdir(parents=True, exist_ok=True)
    Path(store.path("models/live-0001.progress.json")).write_text(
        '{"uri": "models/live-0001.0123456789ab.pt.zst", "sha256": "0", "fingerprint": "other", '
        '"epoch": 1, "batch": 3}')
    got = _models(_follow(path, 4))
    want = _models(_follow_fresh(tmp_path / "fresh"))
    assert sorted(got) == sorted(want) and all(state_equal(want[t], got[t]) == [] for t in want)
    assert "resumed_from" not in Catalog(store).get("live-0001").metrics


def _follow_fresh(path: Path) -> Store:
    grow(Store.open(str(path), create=True), 0, VERSIONS)
    return _follow(path, 0)


@pytest.mark.parametrize(("training", "selection", "match"), [
    ({"save_every": -1}, None, r"training\.save_every"),
    ({"save_every": 2}, {"name": "loss", "mode": "batch_then_sample"}, r"training\.save_every.*batch_then_sample"),
    ({"save_every": 2}, {"name": "loss", "period": 1}, r"training\.save_every.*'loss' with period 1"),
])
def test_save_every_is_checked_when_parsed(training, selection, match) -> None:
    cfg = _config(0)
    cfg["training"] = training
    if selection is not None:
        cfg["selection"] = selection
    with pytest.raises(PipelineConfigError, match=match):
        parse_pipeline(cfg)


def test_save_every_is_kept_in_the_recorded_configuration() -> None:
    assert "save_every" not in parse_pipeline(_config(0)).to_dict()["training"]
    assert parse_pipeline(_config(5)).to_dict()["training"]["save_every"] == 5
    assert parse_pipeline(parse_pipeline(_config(5)).to_dict()).training.save_every == 5
