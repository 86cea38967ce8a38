"""The catalog: atomic training records, exact train sets, checkpoints, lineage, evaluations."""

from __future__ import annotations

import re
import sys

import numpy as np
import pyarrow as pa
import pytest
import torch

from modyn_store.core.trainings import Catalog, CheckpointRef, Cost
from modyn_store.core.errors import CorruptionError, DataUnavailableError, InvalidArgumentError, InvalidNameError, UnknownKeyError
from modyn_store.core.trainset import TrainSet


def test_record_is_one_version_and_round_trips(store) -> None:
    cat = Catalog(store)
    rng = np.random.default_rng(0)
    keys = rng.choice(store.as_of(None).keys(), 50, replace=False)
    plans = (rng.choice(50, 20, replace=False), rng.choice(50, 30, replace=False))
    ts = TrainSet(keys=keys, weights=rng.uniform(0.1, 3, 50), version=store.version, per_epoch=plans)
    before = store.version
    rec = cat.record_training(
        "run-1", ts, policy="rs2", policy_params={"k": 20}, seed=9, cutoff=(2, 17),
        trigger={"kind": "amount", "every": 100}, cost=Cost(100, 1.5, 0.5), update_decision="deploy",
    )
    assert store.version == before + 1 and store.log()[-1].op == "train"
    assert rec.recorded_version == store.version
    assert (rec.policy, rec.policy_params, rec.seed, rec.cutoff) == ("rs2", {"k": 20}, 9, (2, 17))
    assert rec.cost == Cost(100, 1.5, 0.5) and rec.trigger == {"kind": "amount", "every": 100}
    back = cat.train_set("run-1")
    assert back == ts
    assert np.array_equal(back.keys, ts.keys) and np.array_equal(back.weights, ts.weights)
    assert all(np.array_equal(a, b) for a, b in zip(back.per_epoch, plans))
    sel = store.read_table("selections")
    assert set(sel.column_names) >= {"training_id", "key", "weight", "position"}
    assert [r.training_id for r in cat.list()] == ["run-1"]


def test_duplicate_and_unsafe_ids_are_refused(store) -> None:
    cat = Catalog(store)
    ts = TrainSet.uniform(np.array([1, 2]), version=store.version)
    cat.record_training("a1", ts)
    v = store.version
    with pytest.raises(InvalidArgumentError, match="training_id"):
        cat.record_training("a1", ts)
    assert store.version == v  # the failed write left no version
    for bad in ("../x", "a/b", "", "1abc"):
        with pytest.raises(InvalidNameError):
            cat.record_training(bad, ts)
    with pytest.raises(UnknownKeyError):
        cat.get("nope")


def test_checkpoint_round_trip_and_corruption(store) -> None:
    cat = Catalog(store)
    state = {"w": torch.randn(3, 4), "b": torch.arange(3, dtype=torch.int64)}
    ref = cat.save_checkpoint("m1", state)
    assert re.fullmatch(r"models/m1\.[0-9a-f]{12}\.pt\.zst", ref.uri)
    assert cat.save_checkpoint("m1", state).uri != ref.uri, "every write gets a file of its own"
    back = cat.load_checkpoint(ref)
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)
    path = store.path(ref.uri)
    with open(path, "r+b") as fh:
        fh.seek(10)
        fh.write(b"\x00\xff")
    with pytest.raises(CorruptionError, match="corrupt"):
        cat.load_checkpoint(ref)
    with pytest.raises(InvalidArgumentError):
        cat.load_checkpoint(CheckpointRef("../../etc/passwd", ref.sha256))


def test_checkpoint_refuses_pickled_objects(store) -> None:
    import io
    import zstandard

    cat = Catalog(store)

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    buf = io.BytesIO()
    torch.save({"x": Evil()}, buf)
    blob = zstandard.ZstdCompressor().compress(buf.getvalue())
    store.fs.makedirs(store.path("models"), exist_ok=True)
    with store.fs.open(store.path("models/evil.pt.zst"), "wb") as fh:
        fh.write(blob)
    import hashlib

    with pytest.raises(Exception, match="[Ww]eights only|Unsupported global"):
        cat.load_checkpoint(CheckpointRef("models/evil.pt.zst", hashlib.sha256(blob).hexdigest()))


def test_lineage_follows_parents(store) -> None:
    cat = Catalog(store)
    keys = store.as_of(None).keys()
    sets = [TrainSet.uniform(keys[i * 10 : i * 10 + 10], version=store.version) for i in range(3)]
    parent = None
    for i, ts in enumerate(sets):
        ref = cat.save_checkpoint(f"g{i}", {"w": torch.full((2,), float(i))})
        cat.record_training(f"g{i}", ts, checkpoint=ref, parent_id=parent)
        parent = f"g{i}"
    chain = cat.lineage("g2")
    assert [s.training_id for s in chain] == ["g2", "g1", "g0"]
    assert [s.keys.tolist() for s in chain] == [np.sort(s.keys).tolist() for s in reversed(sets)]
    assert float(cat.load_checkpoint(chain[2].checkpoint)["w"][0]) == 0.0


def test_evaluation_matrix_is_stored(store) -> None:
    cat = Catalog(store)
    t = pa.table(
        {
            "model_id": ["m1", "m1"], "slice": ["s0", "s1"], "slice_start": [0.0, 10.0], "slice_end": [10.0, 20.0],
            "metric": ["accuracy", "accuracy"], "value": [0.5, 0.75], "n": [4, 8], "data_version": [2, 2],
        }
    )
    eid = cat.record_evaluation(t)
    back = cat.evaluations(eid)
    assert back.column("value").to_pylist() == [0.5, 0.75]
    assert back.column("evaluation_id").to_pylist() == [eid, eid]


def test_a_train_set_holding_rows_a_vacuum_purged_since_it_was_read_is_not_recorded(store) -> None:
    """It could never be reproduced, and the vacuum's report did not name it."""
    cat = Catalog(store)
    keys = store.as_of(None).keys()[:20]
    ts = TrainSet.uniform(keys, version=store.version)
    store.delete(keys=[int(keys[3]), int(keys[7])])
    report = store.vacuum(keep_versions=1, dry_run=False)
    assert report.keys.tolist() == [int(keys[3]), int(keys[7])] and report.trainings == ()
    before = (store.version, store.read_table("selections"))
    with pytest.raises(DataUnavailableError, match="a vacuum purged the rows of 2 of its keys") as info:
        cat.record_training("late", ts, policy="all")
    assert info.value.keys.tolist() == [int(keys[3]), int(keys[7])]
    assert (store.version, store.read_table("selections")) == before and cat.list() == []
    # a train set read after the delete holds none of them; one of a tagged version keeps its rows
    assert cat.record_training("fresh", TrainSet.uniform(keys[8:], version=store.version)).n_keys == 12
    kept = store.version
    store.tag("kept", kept)
    store.delete(keys=[int(keys[10])])
    assert store.vacuum(keep_versions=1, dry_run=False).keys.size == 0
    assert cat.record_training("tagged", TrainSet.uniform(keys[8:], version=kept)).n_keys == 12


def test_import_modyn_store_does_not_import_torch() -> None:
    import subprocess

    code = "import sys, modyn_store, modyn_store.core.trainings; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_train_set_holding_keys_erased_since_it_was_read_is_not_recorded(store) -> None:
    cat = Catalog(store)
    keys = store.as_of(None).keys()[:20]
    ts = TrainSet.uniform(keys, version=store.version)
    store.erase([int(keys[4]), int(keys[9])], reason="user request")
    before = (store.version, store.read_table("selections"))
    with pytest.raises(DataUnavailableError, match="erased since") as info:
        cat.record_training("late", ts, policy="all")
    assert info.value.keys.tolist() == [int(keys[4]), int(keys[9])]
    assert (store.version, store.read_table("selections")) == before and cat.list() == []
    assert cat.record_training("kept", TrainSet.uniform(keys[10:], version=store.version)).n_keys == 10
