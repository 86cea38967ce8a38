"""The options of the torchrun entry (``python -m training.distributed``), run in this process
as the one rank of a gloo group: ``--save-every`` and ``--storage-options`` take effect."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch.distributed as dist

from modyn_store import InvalidArgumentError, Store, TrainSet
from modyn_store.core.trainings import Catalog
from tests.training.test_distributed_progress import CFG, Stop, StopAt, _store
from training.distributed import main, save_train_set, train_distributed
from training.progress import saved_progress


@pytest.fixture
def one_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment torchrun gives its one rank (a fresh port for every group started)."""
    for name, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
        monkeypatch.setenv(name, value)
    _fresh_port(monkeypatch)


def _fresh_port(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("MASTER_PORT", str(s.getsockname()[1]))


def _args(tmp_path: Path, uri: str, ts: TrainSet, *extra: str) -> list[str]:
    save_train_set(ts, str(tmp_path / "set.npz"))
    (tmp_path / "cfg.json").write_text(json.dumps(CFG.to_json()))
    return ["--store", uri, "--train-set", str(tmp_path / "set.npz"), "--config", str(tmp_path / "cfg.json"), *extra]


@pytest.mark.usefixtures("one_rank")
def test_save_every_goes_on_from_the_saved_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run stopped after its save at step 4 leaves a progress; the command with
    ``--save-every`` goes on from it (its record says so) and removes it when done."""
    store = _store(tmp_path / "store", n=20)
    ts = TrainSet(store.as_of().keys(), np.ones(20), store.version)
    dist.init_process_group("gloo")
    try:
        with pytest.raises(Stop):
            train_distributed(store, ts, CFG, training_id="t", save_every=2, prepare=StopAt(5))
    finally:
        dist.destroy_process_group()
    ptr = saved_progress(store, "t")
    assert ptr is not None and ptr["world_size"] == 1
    _fresh_port(monkeypatch)
    assert main(_args(tmp_path, store._location.root, ts, "--training-id", "t", "--save-every", "2")) == 0
    rec = Catalog(store).get("t")
    assert rec.metrics["resumed_from"] == [ptr["epoch"], ptr["batch"]] and rec.cost.samples == 3 * 20
    assert saved_progress(store, "t") is None


@pytest.mark.usefixtures("one_rank")
def test_storage_options_reach_the_store(tmp_path: Path, s3_store: tuple[str, dict[str, str]]) -> None:
    """A store on S3 opens with the endpoint and credentials of ``--storage-options`` alone (this
    process knows no others); options that are not a JSON object of strings are refused."""
    uri, options = s3_store
    store = Store.open(uri, create=True, storage_options=options)
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    store.append(pa.table({"ts": np.arange(16), "label": (x[:, 0] > 0).astype(np.int64),
                           "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 4)}))
    ts = TrainSet(store.as_of().keys(), np.ones(16), store.version)
    args = _args(tmp_path, uri, ts, "--training-id", "on-s3")
    for bad, name in (('{"aws_region": ["us-east-1"]}', "aws_region"), ("{aws_region: 1}", "--storage-options"),
                      ('["aws_region"]', "--storage-options")):
        with pytest.raises(InvalidArgumentError, match=name):
            main([*args, "--storage-options", bad])
    assert main([*args, "--storage-options", json.dumps(options)]) == 0
    assert Catalog(Store.open(uri, storage_options=options)).get("on-s3").cost.samples == CFG.epochs * 16


@pytest.mark.usefixtures("one_rank")
def test_backend_is_the_group_backend(tmp_path: Path) -> None:
    """``--backend``: a backend this torch build lacks is refused before the group starts (a
    run that ignored the option would train on gloo); ``gloo`` given by name trains."""
    store = _store(tmp_path / "store", n=8)
    ts = TrainSet(store.as_of().keys(), np.ones(8), store.version)
    args = _args(tmp_path, store._location.root, ts, "--training-id", "b")
    missing = next(b for b in ("nccl", "mpi", "ucc", "xccl") if not dist.is_backend_available(b))
    for bad in ("nope", missing):
        with pytest.raises(InvalidArgumentError, match="--backend"):
            main([*args, "--backend", bad])
    assert not dist.is_initialized()
    assert main([*args, "--backend", "gloo"]) == 0
    assert Catalog(store).get("b").cost.samples == CFG.epochs * 8
