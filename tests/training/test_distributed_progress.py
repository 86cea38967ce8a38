"""Progress checkpoints of DDP training (two gloo ranks in real processes): a training stopped
part way goes on from its last save in every rank and ends with the weights, epoch losses and
sample count of an uninterrupted run, bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch

from modyn_store import InvalidArgumentError, Store, TrainSet
from modyn_store.core.trainings import Catalog
from training.distributed import spawn_training
from training.progress import Progress, fingerprint, saved_progress
from training.reproduction import reproduce
from training.trainer import TrainConfig, model_inputs, state_equal, train

# dropout: every rank draws its own masks, so every rank's generator must be restored
CFG = TrainConfig(model="mlp", model_params={"in_features": 4, "hidden": [16], "n_classes": 2, "dropout": 0.3},
                  epochs=3, batch_size=8, optimizer="adam", lr=0.05, seed=11)


class Stop(Exception):
    pass


class StopAt:
    """A ``prepare`` (picklable, one copy per rank) that stops its rank before the ``at``-th step
    it sees (counted from 1; 0: never): raising :class:`Stop`, or with ``kill`` rank 1 kills its
    own process with SIGKILL."""

    def __init__(self, at: int = 0, kill: bool = False) -> None:
        self.at, self.kill, self.seen = at, kill, 0

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.seen += 1
        if self.seen == self.at:
            import torch.distributed as dist

            if not self.kill:
                raise Stop(self.at)
            if dist.get_rank() == 1:
                os.kill(os.getpid(), signal.SIGKILL)
        return model_inputs(batch, CFG.inputs)


def _store(path: Path, n: int = 90) -> Store:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    store = Store.open(str(path), create=True)
    store.append(pa.table({"ts": np.arange(n), "label": y,
                           "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 4)}))
    return store


def _models(store: Store) -> list[str]:
    folder = Path(store.path("models"))
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, TrainSet, str]:
    """An uninterrupted 2-rank training (no progress saved). 81 rows, global batch 8: 11 steps
    an epoch, the last of one row, so rank 1 has 10 batches and a zero-weight filler step."""
    store = _store(tmp_path_factory.mktemp("ddp-progress") / "store")
    keys = store.as_of().keys()[:81]
    ts = TrainSet(keys, np.linspace(0.5, 2.0, keys.size), store.version)
    rec = spawn_training(store, ts, CFG, world_size=2, training_id="whole", prepare=StopAt())
    assert not isinstance(rec, dict)
    return store, ts, rec.training_id


def _same_as_whole(store: Store, tid: str, whole_id: str) -> None:
    catalog = Catalog(store)
    a, b = catalog.get(tid), catalog.get(whole_id)
    assert state_equal(catalog.load_checkpoint(tid), catalog.load_checkpoint(whole_id)) == []
    assert a.metrics["epoch_losses"] == b.metrics["epoch_losses"]
    assert a.cost.samples == b.cost.samples == 3 * 81
    # done: the progress files are gone, the recorded checkpoints stay
    assert saved_progress(store, tid) is None
    assert all(".progress" not in n for n in _models(store))
    assert sum(n.startswith(f"{tid}.") for n in _models(store)) == 1


@pytest.mark.parametrize(("save_every", "stop_at", "saved"), [
    (10, 13, (0, 10)),  # rank 1's shard ended before step 10: it goes on with its filler step
    (11, 15, (0, 11)),  # saved at the epoch's end
])
def test_a_stopped_ddp_training_goes_on_to_the_uninterrupted_result(
        whole: tuple[Store, TrainSet, str], save_every: int, stop_at: int, saved: tuple[int, int]) -> None:
    store, ts, whole_id = whole
    tid = f"stopped-{save_every}"
    with pytest.raises(Exception, match="Stop"):
        spawn_training(store, ts, CFG, world_size=2, training_id=tid, save_every=save_every, prepare=StopAt(stop_at))
    ptr = saved_progress(store, tid)
    assert ptr is not None and (ptr["epoch"], ptr["batch"]) == saved and ptr["world_size"] == 2
    # another world size, or one process, is refused before anything runs; the progress stays
    before = _models(store)
    with pytest.raises(InvalidArgumentError, match="world_size.*save_every"):
        spawn_training(store, ts, CFG, world_size=1, training_id=tid, save_every=save_every, prepare=StopAt())
    with pytest.raises(InvalidArgumentError, match="world_size.*save_every"):
        train(store, ts, CFG, training_id=tid, save_every=save_every, prepare=StopAt())
    fp = fingerprint(CFG.to_json(), ts, None)
    with pytest.raises(InvalidArgumentError, match="world_size.*in 2 ranks"):
        Progress.open(Catalog(store), tid, save_every, fp, world_size=4, rank=3)
    assert _models(store) == before and saved_progress(store, tid) == ptr
    rec = spawn_training(store, ts, CFG, world_size=2, training_id=tid, save_every=save_every, prepare=StopAt())
    assert not isinstance(rec, dict) and rec.metrics["resumed_from"] == list(saved)
    _same_as_whole(store, tid, whole_id)


def test_a_killed_rank_leaves_a_progress_both_ranks_go_on_from(whole: tuple[Store, TrainSet, str],
                                                                tmp_path: Path) -> None:
    store, ts, whole_id = whole
    np.save(tmp_path / "keys.npy", ts.keys)
    np.save(tmp_path / "weights.npy", ts.weights)
    # saves every 3 steps: after step 3, 6, 9 of epoch 0, ... 2 of epoch 2; rank 1 is killed before
    # its 27th step (epoch 2, step 5), rank 0 is ended by the launcher
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_distributed_progress import CFG, StopAt
        from modyn_store import Store, TrainSet
        from training.distributed import spawn_training
        ts = TrainSet(np.load({str(tmp_path / 'keys.npy')!r}), np.load({str(tmp_path / 'weights.npy')!r}), {ts.version})
        spawn_training(Store.open({store.uri!r}), ts, CFG, world_size=2, training_id="killed", save_every=3,
                       prepare=StopAt(27, kill=True))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=300)
    err = proc.stderr.decode()[-3000:]
    assert proc.returncode != 0 and "SIGKILL" in err, err
    ptr = saved_progress(store, "killed")
    assert ptr is not None and (ptr["epoch"], ptr["batch"]) == (2, 2)
    rec = spawn_training(store, ts, CFG, world_size=2, training_id="killed", save_every=3, prepare=StopAt())
    assert not isinstance(rec, dict) and rec.metrics["resumed_from"] == [2, 2]
    _same_as_whole(store, "killed", whole_id)
    assert reproduce(store, "killed", prepare=StopAt()).identical  # the record reproduces in one run


def test_bad_save_every_is_refused_before_spawning(tmp_path: Path) -> None:
    store = _store(tmp_path / "store", n=20)
    ts = TrainSet.uniform(store.as_of().keys(), version=store.version)
    with pytest.raises(InvalidArgumentError, match="training_id"):
        spawn_training(store, ts, CFG, world_size=2, save_every=2)
    with pytest.raises(InvalidArgumentError, match="save_every"):
        spawn_training(store, ts, CFG, world_size=2, training_id="b", save_every=-1)
    assert _models(store) == []


@pytest.mark.slow
def test_torchrun_save_every(whole: tuple[Store, TrainSet, str], tmp_path: Path) -> None:
    """``--save-every`` reaches the ranks: the run saves and cleans up, with the weights of a run without it."""
    import json

    from training.distributed import save_train_set

    store, ts, _ = whole
    save_train_set(ts, str(tmp_path / "set.npz"))
    (tmp_path / "cfg.json").write_text(json.dumps(CFG.to_json()))
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "training.distributed", "--store", store._location.root, "--train-set", str(tmp_path / "set.npz"),
         "--config", str(tmp_path / "cfg.json"), "--training-id", "via-torchrun", "--save-every", "3"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    plain = spawn_training(store, ts, CFG, world_size=2, training_id="plain")
    assert not isinstance(plain, dict)
    catalog = Catalog(store)
    assert state_equal(catalog.load_checkpoint("via-torchrun"), catalog.load_checkpoint("plain")) == []
    assert saved_progress(store, "via-torchrun") is None


def test_a_rank_refused_the_training_lock_is_a_conflict_error_for_the_caller(tmp_path: Path) -> None:
    """Rank 0 takes the training's lock; its refusal reached the caller of ``spawn_training`` as
    torch's ``ProcessRaisedException`` wrapping the traceback, not as ``ConflictError``."""
    from modyn_store import ConflictError
    from training._training_lock import TrainingLock

    store = _store(tmp_path / "store")
    ts = TrainSet(store.as_of().keys()[:40], np.ones(40), store.version)
    held = TrainingLock(store, "held").acquire()  # another training of this id, running
    try:
        with pytest.raises(ConflictError, match="'held'"):
            spawn_training(store, ts, CFG, world_size=2, training_id="held", save_every=2, prepare=StopAt())
    finally:
        held.release(remove=True)
    assert saved_progress(store, "held") is None and "held" not in [r.training_id for r in Catalog(store).list()]


def test_a_ranks_erased_keys_error_reaches_the_caller_with_its_keys(tmp_path: Path) -> None:
    """Every rank's error came back as torch's ``ProcessRaisedException`` (text); the store's
    typed errors now come back as they were raised, attributes included."""
    from training.errors import ErasedKeysError

    store = _store(tmp_path / "store")
    keys = store.as_of().keys()[:40]
    ts = TrainSet(keys, np.ones(40), store.version)
    store.erase(keys[[3, 7]], reason="user request")
    with pytest.raises(ErasedKeysError) as info:
        spawn_training(store, ts, CFG, world_size=2, training_id="gone", prepare=StopAt())
    assert sorted(np.asarray(info.value.keys).tolist()) == sorted(keys[[3, 7]].tolist())


class EraseAt:
    """A ``prepare`` that erases ``key`` from the store at ``uri`` before rank 0's ``at``-th step."""

    def __init__(self, uri: str, key: int, at: int) -> None:
        self.uri, self.key, self.at, self.seen = uri, key, at, 0

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        import torch.distributed as dist

        self.seen += 1
        if self.seen == self.at and dist.get_rank() == 0:
            Store.open(self.uri).erase([self.key], reason="user request")
        return model_inputs(batch, CFG.inputs)


def test_the_progress_of_a_ddp_training_whose_keys_are_erased_while_it_trains_is_removed(tmp_path: Path) -> None:
    """Its record is refused; a progress saved before the erase holds state learned from the erased rows."""
    from training.errors import ErasedKeysError

    store = _store(tmp_path / "store")
    keys = store.as_of().keys()[:40]
    ts = TrainSet(keys, np.ones(40), store.version)
    cfg = replace(CFG, epochs=1)
    with pytest.raises(ErasedKeysError):
        spawn_training(store, ts, cfg, world_size=2, training_id="e", save_every=2,
                       prepare=EraseAt(str(tmp_path / "store"), int(keys[0]), 4))
    assert store.log()[-1].op == "erase" and Catalog(store).list() == []
    assert saved_progress(store, "e") is None and _models(store) == []


def test_the_progress_of_a_ddp_training_whose_loader_finds_its_keys_erased_is_removed(tmp_path: Path) -> None:
    """Keys erased in epoch 0 make every rank's loader raise as epoch 1 starts, after progress
    saves at steps 2 and 4: those saves learned from the erased rows and go with the refusal."""
    from training.errors import ErasedKeysError

    store = _store(tmp_path / "store")
    keys = store.as_of().keys()[:40]
    ts = TrainSet(keys, np.ones(40), store.version)
    cfg = replace(CFG, epochs=2)  # 40 rows, global batch 8: 5 steps an epoch
    with pytest.raises(ErasedKeysError) as info:
        spawn_training(store, ts, cfg, world_size=2, training_id="e", save_every=2,
                       prepare=EraseAt(str(tmp_path / "store"), int(keys[0]), 3))
    assert np.asarray(info.value.keys).tolist() == [int(keys[0])]
    assert store.log()[-1].op == "erase" and Catalog(store).list() == []
    assert saved_progress(store, "e") is None and _models(store) == []


class _FailingLoader:
    """A loader of two batches an epoch whose rank ``rank`` fails as an epoch starts (``typed``:
    with one of the store's errors), and whose rank ``erased`` finds keys erased."""

    def __init__(self, rank: int, typed: bool, erased: int = -1) -> None:
        self.rank, self.typed, self.erased = rank, typed, erased

    def num_batches(self, epoch: int) -> int:
        return 2

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        pass

    def __iter__(self) -> Any:
        import torch.distributed as dist

        from training.errors import ErasedKeysError

        if dist.get_rank() == self.erased:
            raise ErasedKeysError("training 't'", np.asarray([5], np.int64))
        if dist.get_rank() == self.rank:
            raise InvalidArgumentError("rows", "shard", "readable rows") if self.typed else OSError("shard unreadable")
        return iter([{"x": torch.zeros(1)}] * 2)


def _epoch_start(fail_rank: int, typed: bool, erased: int = -1) -> str:
    from training._ddp_progress import epoch_batches

    try:
        epoch_batches(_FailingLoader(fail_rank, typed, erased), 0, 0, 2, False, None, torch.device("cpu"))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "no error"


@pytest.mark.parametrize(("fail_rank", "typed"), [(0, False), (1, False), (1, True)])
def test_a_loader_failing_in_one_rank_as_an_epoch_starts_fails_every_rank(fail_rank: int, typed: bool) -> None:
    """No rank is left waiting in a reduction the failed rank never reaches: every rank raises,
    a store's typed error as it is (rank 0 reports what it raised; run in a subprocess, so that a
    wait fails the test)."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_distributed_progress import _epoch_start
        from training._spawn import spawn
        print("RANK0", spawn(_epoch_start, 2, {fail_rank}, {typed}))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    want = "OSError: shard unreadable" if fail_rank == 0 else \
        "InvalidArgumentError: invalid rows='shard'" if typed else \
        "RuntimeError: rank 1's loader failed as epoch 0 started: OSError: shard unreadable"
    assert f"RANK0 {want}" in out, out


def test_keys_erased_in_one_rank_and_another_failure_in_another_raise_in_every_rank() -> None:
    """Rank 0 finds keys erased, rank 1's loader fails otherwise: each raises its own error."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_distributed_progress import _epoch_start
        from training._spawn import spawn
        print("RANK0", spawn(_epoch_start, 2, 1, False, 0))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    assert "RANK0 ErasedKeysError" in proc.stdout.decode(), proc.stdout.decode()
