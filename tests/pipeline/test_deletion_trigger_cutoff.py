"""Replay with deletion events and a ``deletion`` trigger: a chunk and the deletion event after
it are one delta, and a training the deletion fires is cut at the deleting version (selected as
of it), so it never trains on the rows just deleted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pipeline_helpers import tiny

from modyn_store.app.pipeline import parse_pipeline
from modyn_store.app.pipeline.runner import Runner
from modyn_store.core.trainings import Catalog


def test_deletion_fired_training_excludes_the_deleted_rows(tmp_path: Path) -> None:
    trigger = {"name": "any", "triggers": [{"name": "data_amount", "every": 1000},
                                           {"name": "deletion", "share": 0.05}]}
    cfg = parse_pipeline(tiny("deltrig", trigger=trigger, selection={"name": "all_data"},
                              update={"name": "retrain"}, limits={"max_trainings": 4},
                              deletions={"every": 1, "fraction": 0.2, "mode": "delete",
                                         "older_than": 0, "seed": 1}))
    runner = Runner(cfg, tmp_path / "p")
    deleted: dict[int, np.ndarray] = {}  # deleting version -> keys
    at_deletion = 0
    for ev in runner.run():
        if ev.kind == "delete":
            assert ev.deletion is not None
            deleted[ev.deletion.version] = ev.deletion.keys
        elif ev.kind == "train":
            assert ev.training is not None
            version = ev.training.cutoff[0]
            keys = Catalog(runner.store).train_set(ev.training.training_id).keys
            gone = [k for v, k in deleted.items() if v <= version]
            if gone:
                assert np.intersect1d(keys, np.concatenate(gone)).size == 0
            at_deletion += version in deleted
    assert at_deletion >= 1  # a deletion firing, cut at the version that deleted the rows
