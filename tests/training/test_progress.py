"""Progress checkpoints: a training stopped part way goes on from its last save and ends with the
weights, losses and sample count of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from modyn_store import Store
from modyn_store.core.errors import CorruptionError, DataUnavailableError, InvalidArgumentError
from modyn_store.core.trainings import Catalog
from modyn_store.core.trainset import TrainSet
from training.progress import discard_progress, fingerprint, saved_progress
from training.reproduction import reproduce
from training.trainer import TrainConfig, model_inputs, state_equal, train

CFG = TrainConfig(model="", inputs={"features": "x"}, label="label", epochs=3, batch_size=32,
                  optimizer="adam", lr=0.01, grad_accum=2, seed=4)


class Net(nn.Module):
    """An MLP with dropout: a resumed run must also restore torch's generator."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.body(features)


class Stop(Exception):
    pass


def _stopping(at: int):
    """A ``prepare`` that raises before the ``at``-th batch it sees (counted from 1)."""
    seen = [0]

    def prepare(batch):
        seen[0] += 1
        if seen[0] == at:
            raise Stop(at)
        return model_inputs(batch, CFG.inputs)

    return prepare


def _plain(batch):
    return model_inputs(batch, CFG.inputs)


def _set(store, n: int = 300) -> TrainSet:
    rng = np.random.default_rng(0)
    keys = rng.choice(store.as_of(None).keys(), n, replace=False)
    return TrainSet(keys=keys, weights=rng.uniform(0.5, 2, n), version=store.version)


def _models(store) -> list[str]:
    folder = Path(store.path("models"))
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("stop_at", [5, 10, 11, 23])
def test_a_stopped_training_goes_on_to_the_uninterrupted_result(store, stop_at: int) -> None:
    ts = _set(store)  # 10 batches an epoch, groups of 2: saves after batches 4, 8, 10 (epoch end) ...
    whole = train(store, ts, CFG, model=Net, prepare=_plain, training_id="whole")
    with pytest.raises(Stop):
        train(store, ts, CFG, model=Net, prepare=_stopping(stop_at), training_id="t", save_every=3)
    saved = saved_progress(store, "t")
    assert saved is not None and (saved["epoch"], saved["batch"]) != (0, 0)
    again = train(store, ts, CFG, model=Net, prepare=_plain, training_id="t", save_every=3)
    assert state_equal(whole.model.state_dict(), again.model.state_dict()) == []
    assert again.epoch_losses == whole.epoch_losses
    assert again.cost.samples == whole.cost.samples == 3 * ts.size
    assert again.record is not None and again.record.metrics["resumed_from"] == [saved["epoch"], saved["batch"]]
    stored = Catalog(store).load_checkpoint("t")
    assert state_equal(stored, {k: v.detach() for k, v in whole.model.state_dict().items()}) == []
    # done: the progress files are gone, the two recorded checkpoints stay
    assert saved_progress(store, "t") is None
    assert len(_models(store)) == 2 and all(".progress" not in n for n in _models(store))


def test_without_the_progress_the_rerun_starts_over_and_differs(store) -> None:
    """The comparison above is not vacuous: a run that trained some batches twice ends elsewhere."""
    ts = _set(store)
    whole = train(store, ts, CFG, model=Net, prepare=_plain, record=False)
    net = Net()
    with pytest.raises(Stop):
        train(store, ts, CFG, model=lambda: net, prepare=_stopping(14), training_id="u", save_every=3)
    discard_progress(store, "u")
    assert saved_progress(store, "u") is None
    # a rerun from the trained-on weights without the saved optimizer and position
    again = train(store, ts, CFG, model=lambda: net, prepare=_plain, training_id="u", save_every=3)
    assert again.record is not None and "resumed_from" not in again.record.metrics
    assert state_equal(whole.model.state_dict(), again.model.state_dict()) != []


def test_a_killed_process_goes_on(tmp_path: Path, store) -> None:
    ts = _set(store)
    whole = train(store, ts, CFG, model=Net, prepare=_plain, record=False)
    np.save(tmp_path / "keys.npy", ts.keys)
    np.save(tmp_path / "weights.npy", ts.weights)
    script = textwrap.dedent(f"""
        import os, signal, sys
        import numpy as np
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_progress import CFG, Net
        from modyn_store import Store
        from modyn_store.core.trainset import TrainSet
        from training.trainer import model_inputs, train
        store = Store.open({store.uri!r})
        ts = TrainSet(keys=np.load({str(tmp_path / 'keys.npy')!r}), weights=np.load({str(tmp_path / 'weights.npy')!r}),
                      version={ts.version})
        seen = [0]
        def prepare(batch):
            seen[0] += 1
            if seen[0] == 17:
                os.kill(os.getpid(), signal.SIGKILL)
            return model_inputs(batch, CFG.inputs)
        train(store, ts, CFG, model=Net, prepare=prepare, training_id="k", save_every=3)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    saved = saved_progress(store, "k")
    assert saved is not None and (saved["epoch"], saved["batch"]) == (1, 6)
    again = train(store, ts, CFG, model=Net, prepare=_plain, training_id="k", save_every=3)
    assert state_equal(whole.model.state_dict(), again.model.state_dict()) == []
    assert again.epoch_losses == whole.epoch_losses
    assert reproduce(store, "k", model=Net, prepare=_plain).identical  # the record reproduces in one run


def test_a_progress_of_other_arguments_is_refused(store) -> None:
    ts = _set(store)
    with pytest.raises(Stop):
        train(store, ts, CFG, model=Net, prepare=_stopping(7), training_id="p", save_every=2)
    before = _models(store)
    for kwargs in ({"config": replace(CFG, lr=0.02)}, {"train_set": _set(store, 200)}):
        config, train_set = kwargs.get("config", CFG), kwargs.get("train_set", ts)
        assert isinstance(config, TrainConfig) and isinstance(train_set, TrainSet)
        with pytest.raises(InvalidArgumentError, match="training_id.*discard_progress"):
            train(store, train_set, config, model=Net, prepare=_plain, training_id="p", save_every=2)
    assert _models(store) == before  # nothing written, the progress kept
    wide = TrainConfig(**{**CFG.to_json(), "model": "mlp",
                          "model_params": {"in_features": 8, "n_classes": 3, "hidden": [16]}})
    with pytest.raises(Stop):
        train(store, ts, wide, prepare=_stopping(7), training_id="q", save_every=2)
    with pytest.raises(InvalidArgumentError, match="fits this model"):
        train(store, ts, wide, model=Net, prepare=_plain, training_id="q", save_every=2)


def test_a_damaged_progress_file_is_found(store) -> None:
    ts = _set(store)
    with pytest.raises(Stop):
        train(store, ts, CFG, model=Net, prepare=_stopping(9), training_id="d", save_every=2)
    saved = saved_progress(store, "d")
    assert saved is not None
    path = Path(store.path(saved["uri"]))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptionError, match="sha256"):
        train(store, ts, CFG, model=Net, prepare=_plain, training_id="d", save_every=2)
    path.rename(path.with_suffix(".moved"))
    with pytest.raises(DataUnavailableError, match="missing.*discard_progress"):
        train(store, ts, CFG, model=Net, prepare=_plain, training_id="d", save_every=2)
    Path(store.path("models/d.progress.json")).write_text("{not json")
    with pytest.raises(CorruptionError, match="not JSON"):
        saved_progress(store, "d")
    assert discard_progress(store, "d")
    train(store, ts, CFG, model=Net, prepare=_plain, training_id="d", save_every=2)
    # a pointer naming the file of another training (an id that starts with this one) is refused,
    # and removing it leaves that file alone
    train(store, ts, CFG, model=Net, prepare=_plain, training_id="e.b")
    other = Catalog(store).get("e.b").checkpoint
    assert other is not None
    Path(store.path("models/e.progress.json")).write_text(json.dumps(
        {"uri": other.uri, "sha256": other.sha256, "fingerprint": fingerprint(CFG.to_json(), ts, None),
         "epoch": 0, "batch": 1}))
    with pytest.raises(CorruptionError, match="not a file of that training"):
        train(store, ts, CFG, model=Net, prepare=_plain, training_id="e", save_every=2)
    assert discard_progress(store, "e") and Path(store.path(other.uri)).exists()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"save_every": -1, "training_id": "a"}, "save_every"),
    ({"save_every": True, "training_id": "a"}, "save_every"),
    ({"save_every": 2}, "training_id"),
    ({"save_every": 2, "training_id": "a", "reselect": lambda m: None, "reselect_every": 1}, "save_every"),
    ({"save_every": 2, "training_id": "a", "downsample": object()}, "save_every"),
    ({"save_every": 2, "training_id": "../a"}, "training_id"),
])
def test_bad_progress_arguments(store, kwargs, match) -> None:
    with pytest.raises((InvalidArgumentError, ValueError), match=match):
        train(store, _set(store), CFG, model=Net, prepare=_plain, **kwargs)
    assert _models(store) == []


def test_a_training_that_is_not_recorded_also_cleans_up(store: Store) -> None:
    ts = _set(store)
    with pytest.raises(Stop):
        train(store, ts, CFG, model=Net, prepare=_stopping(12), training_id="n", save_every=4, record=False)
    assert len(_models(store)) == 2  # the progress file and its pointer
    train(store, ts, CFG, model=Net, prepare=_plain, training_id="n", save_every=4, record=False)
    assert _models(store) == []


def test_a_progress_left_beside_a_recorded_training_is_removed_by_the_refused_rerun(store: Store) -> None:
    """A kill between the record and the removal of the progress leaves files that can never be
    resumed (the id is recorded): the rerun, refused for the id, removes them."""
    ts = _set(store)
    with pytest.raises(Stop):
        train(store, ts, CFG, model=Net, prepare=_stopping(6), training_id="r", save_every=2)
    saved = saved_progress(store, "r")
    assert saved is not None
    pointer = Path(store.path("models/r.progress.json")).read_bytes()
    kept = Path(store.path(saved["uri"])).read_bytes()
    train(store, ts, CFG, model=Net, prepare=_plain, training_id="r", save_every=2)
    Path(store.path("models/r.progress.json")).write_bytes(pointer)  # as the kill would have left them
    Path(store.path(saved["uri"])).write_bytes(kept)
    with pytest.raises(InvalidArgumentError, match="training_id"):
        train(store, ts, CFG, model=Net, prepare=_plain, training_id="r", save_every=2)
    assert saved_progress(store, "r") is None and not Path(store.path(saved["uri"])).exists()
    assert Catalog(store).load_checkpoint("r")  # the recorded checkpoint stays

