"""Two processes and one training id with ``save_every``: the second is refused at once
(``ConflictError``), ``discard_progress`` is refused while the training runs, and a training
whose id another process recorded meanwhile leaves no progress behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from modyn_store import Store
from modyn_store.core.errors import ConflictError, InvalidArgumentError
from modyn_store.core.trainings import Catalog
from modyn_store.core.trainset import TrainSet
from training.progress import discard_progress, saved_progress
from training.trainer import TrainConfig, train

CFG = TrainConfig(model="logreg", model_params={"in_features": 8, "n_classes": 3}, inputs={"features": "x"},
                  label="label", epochs=3, batch_size=32, lr=0.1, seed=4)


def _set(store: Store) -> TrainSet:
    return TrainSet.uniform(np.arange(300), version=store.version)


def _start(store: Store, tmp_path: Path, training_id: str) -> subprocess.Popen[bytes]:
    """A process training ``training_id`` with ``save_every=2`` that, before its 5th batch (after
    its second save), writes ``paused`` and waits for ``go``."""
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_progress_processes import CFG, _set
        from modyn_store import Store
        from training.trainer import model_inputs, train
        store = Store.open({store.uri!r})
        seen = [0]
        def prepare(batch):
            seen[0] += 1
            if seen[0] == 5:
                open({str(tmp_path / 'paused')!r}, 'w').close()
                while not os.path.exists({str(tmp_path / 'go')!r}):
                    time.sleep(0.02)
            return model_inputs(batch, CFG.inputs)
        try:
            train(store, _set(store), CFG, prepare=prepare, training_id={training_id!r}, save_every=2)
        except Exception as exc:
            print(type(exc).__name__, exc)
            sys.exit(3)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (tmp_path / "paused").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(proc.communicate()[1].decode()[-2000:])
        time.sleep(0.02)
    return proc


def _models(store: Store) -> list[str]:
    return sorted(os.listdir(store.path("models")))


def test_a_second_process_on_a_training_being_saved_is_refused(store: Store, tmp_path: Path) -> None:
    proc = _start(store, tmp_path, "c")
    try:
        before = saved_progress(store, "c")
        assert before is not None and (before["epoch"], before["batch"]) == (0, 4)
        with pytest.raises(ConflictError, match="'c'"):
            train(store, _set(store), CFG, training_id="c", save_every=2)
        with pytest.raises(ConflictError, match="'c'"):  # its next save would bring it back
            discard_progress(store, "c")
        assert saved_progress(store, "c") == before  # both left the progress as it was
    finally:
        (tmp_path / "go").touch()
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out + err).decode()[-2000:]
    ckpt = Catalog(store).get("c").checkpoint
    assert ckpt is not None and saved_progress(store, "c") is None
    assert _models(store) == [ckpt.uri.split("/")[-1]]
    assert discard_progress(store, "c") is False  # the lock went with the training
    assert os.listdir(store.path("_trainings")) == []  # and so did its file


def test_a_training_whose_id_another_process_recorded_leaves_no_progress(store: Store, tmp_path: Path) -> None:
    """Without the lock (a training that saves no progress, or a store on object storage) both
    train: the one that records second is refused on its id and removes its own progress."""
    proc = _start(store, tmp_path, "d")
    try:
        won = train(store, _set(store), CFG, training_id="d")
    finally:
        (tmp_path / "go").touch()
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3 and b"InvalidArgumentError" in out, (out + err).decode()[-2000:]
    ckpt = Catalog(store).get("d").checkpoint
    assert ckpt is not None and won.record is not None and won.record.checkpoint == ckpt
    assert saved_progress(store, "d") is None
    assert _models(store) == [ckpt.uri.split("/")[-1]]
    with pytest.raises(InvalidArgumentError, match="training_id"):
        train(store, _set(store), CFG, training_id="d", save_every=2)


def test_the_id_is_checked_again_once_the_lock_is_held(store: Store) -> None:
    """The trainer checks the id before it takes the lock; a training of that id that held the
    lock until it recorded, between the two, made this one train to its end and then be refused."""
    from training.progress import Progress

    train(store, _set(store), CFG, training_id="d", save_every=2)  # recorded: the id is used
    with pytest.raises(InvalidArgumentError, match="training_id"):
        Progress.open(Catalog(store), "d", 2, "any fingerprint")
    from training._training_lock import TrainingLock

    TrainingLock(store, "d").acquire().release(remove=True)  # given back
