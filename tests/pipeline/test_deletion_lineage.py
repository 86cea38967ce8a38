"""Deletion in the loop: after an erasure, DeletionAwareRetrain retrains from scratch without the
erased keys, and the new model's lineage holds no checkpoint trained on an erased key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pipeline_helpers import tiny

from modyn_store.core.trainings import Catalog
from modyn_store.app.pipeline import parse_pipeline
from modyn_store.app.pipeline.runner import Runner


def _replay(tmp_path: Path, name: str, update: dict) -> tuple[Runner, list]:
    cfg = parse_pipeline(tiny(name, update=update,
                              deletions={"every": 2, "fraction": 0.1, "mode": "erase", "older_than": 1, "seed": 1}))
    runner = Runner(cfg, tmp_path / name)
    events = list(runner.run())
    return runner, events


def test_deletion_aware_retrain_lineage_is_free_of_erased_keys(tmp_path: Path) -> None:
    runner, events = _replay(tmp_path, "aware", {"name": "deletion_aware_retrain", "retrain_scope": "all_data"})
    cat = Catalog(runner.store)
    erased = np.empty(0, np.int64)
    affected: set[str] = set()
    checked = 0
    pending = False
    for ev in events:
        if ev.kind == "delete":
            assert ev.deletion is not None and ev.deletion.keys.size > 0
            erased = np.union1d(erased, ev.deletion.keys)
            affected |= set(ev.deletion.trainings)
            pending = pending or bool(ev.deletion.trainings)
        elif ev.kind == "train" and pending:
            t = ev.training
            rec = cat.get(t.training_id)
            assert t.mode == "retrain" and rec.parent_id is None  # from scratch
            keys = cat.train_set(t.training_id).keys
            assert np.intersect1d(keys, erased).size == 0
            lineage = cat.lineage(t.training_id)
            assert [s.training_id for s in lineage] == [t.training_id]
            assert not affected & {s.training_id for s in lineage}
            assert runner.store.as_of(rec.data_version).contains(erased).sum() == 0
            checked += 1
            pending = False
    assert checked >= 1 and affected  # an erasure hit trained-on keys and a retrain followed


def test_finetune_keeps_ancestors_trained_on_erased_keys(tmp_path: Path) -> None:
    runner, events = _replay(tmp_path, "plain", {"name": "finetune"})
    cat = Catalog(runner.store)
    affected: set[str] = set()
    for ev in events:
        if ev.kind == "delete" and ev.deletion is not None:
            affected |= set(ev.deletion.trainings)
    last = runner.loop.trainings[-1]
    lineage = {s.training_id for s in cat.lineage(last.training_id)}
    assert affected and affected & lineage  # the contrast the aware policy removes
