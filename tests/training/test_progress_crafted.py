"""A damaged or crafted progress pointer or progress file: refused with a typed error, and
never a reason to remove a recorded training's checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from modyn_store import Store
from modyn_store.core.errors import CorruptionError
from modyn_store.core.trainings import Catalog, CheckpointRef
from modyn_store.core.trainset import TrainSet
from training._cache_files import DamagedEntryError, _read_entry
from training.progress import discard_progress, saved_progress
from training.trainer import TrainConfig, model_inputs, train

CFG = TrainConfig(model="", inputs={"features": "x"}, label="label", epochs=2, batch_size=50, lr=0.01, seed=1)


class Stop(Exception):
    pass


def _set(store: Store) -> TrainSet:
    keys = np.random.default_rng(0).choice(store.as_of(None).keys(), 200, replace=False)
    return TrainSet.uniform(keys, version=store.version)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 3)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.lin(features)


def _net() -> nn.Module:
    return Net()


def _stop_at(at: int) -> Any:
    seen = [0]

    def prepare(batch: Any) -> Any:
        seen[0] += 1
        if seen[0] == at:
            raise Stop(at)
        return model_inputs(batch, CFG.inputs)

    return prepare


def _point(store: Store, training_id: str, uri: str, sha256: str, **rest: Any) -> None:
    ptr = {"uri": uri, "sha256": sha256, "fingerprint": "f", "epoch": 0, "batch": 1, **rest}
    with store.fs.open(store.path(f"models/{training_id}.progress.json"), "wb") as fh:
        fh.write(json.dumps(ptr).encode())


def test_discard_keeps_the_recorded_checkpoint_a_pointer_names(store: Store) -> None:
    done = train(store, _set(store), CFG, model=_net, training_id="t")
    assert done.record is not None and done.record.checkpoint is not None
    ref = done.record.checkpoint
    _point(store, "t", ref.uri, ref.sha256)  # damaged or crafted: names the recorded checkpoint
    assert discard_progress(store, "t")
    assert saved_progress(store, "t") is None
    assert store.fs.exists(store.path(ref.uri))
    loaded = Catalog(store).load_checkpoint("t")
    assert torch.equal(loaded["lin.weight"], done.model.state_dict()["lin.weight"])


@pytest.mark.parametrize("damage", ["no model", "loop not a dict", "total a string", "no rows", "rng a list",
                                    "negative batch"])
def test_a_progress_file_of_another_form_is_corruption(store: Store, damage: str) -> None:
    ts = _set(store)
    with pytest.raises(Stop):
        train(store, ts, CFG, model=_net, prepare=_stop_at(4), training_id="p", save_every=1)
    ptr = saved_progress(store, "p")
    assert ptr is not None and ptr["batch"] > 0
    cat = Catalog(store)
    state = cat.load_checkpoint(CheckpointRef(ptr["uri"], ptr["sha256"]))
    if damage == "no model":
        del state["model"]
    elif damage == "loop not a dict":
        state["loop"] = [1, 2]
    elif damage == "total a string":
        state["loop"]["total"] = "1.5"
    elif damage == "no rows":
        del state["loop"]["rows"]
    elif damage == "rng a list":
        state["rng"] = [1, 2, 3]
    else:
        state["batch"] = ptr["batch"] = -1
    ref = cat.save_checkpoint("p", state)  # a file of the right name and digest, not written by a save
    _point(store, "p", ref.uri, ref.sha256, fingerprint=ptr["fingerprint"], epoch=ptr["epoch"], batch=ptr["batch"])
    with pytest.raises(CorruptionError, match="does not hold a saved progress"):
        train(store, ts, CFG, model=_net, training_id="p", save_every=1)
    assert saved_progress(store, "p") is not None  # left as it was


DEEP = "[" * 100_000 + "]" * 100_000  # far deeper than the JSON decoder recurses


def test_a_progress_pointer_nested_too_deep_is_corruption(store: Store) -> None:
    Path(store.path("models")).mkdir(exist_ok=True)
    Path(store.path("models/t.progress.json")).write_text(DEEP)
    with pytest.raises(CorruptionError, match="nested too deep"):
        saved_progress(store, "t")


def test_a_cache_meta_nested_too_deep_is_a_damaged_entry(tmp_path: Path) -> None:
    entry = tmp_path / "e"
    entry.mkdir()
    (entry / "meta.json").write_text(DEEP)
    with pytest.raises(DamagedEntryError, match="nested too deep"):
        _read_entry("e", str(entry))
