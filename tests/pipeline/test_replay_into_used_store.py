"""Replaying into a store that already holds data is refused before anything is written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modyn_store import Store
from modyn_store.app.pipeline.config import parse_pipeline
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.runner import Runner, run_pipeline

CFG = {"name": "again", "source": {"dataset": "elec2", "limit": 2000, "chunk": "14d"}, "model": {"name": "logreg"},
       "trigger": {"name": "time", "every": "14d"}, "evaluation": {"slices": 2}}


def test_second_replay_into_the_same_store_is_refused(tmp_path: Path) -> None:
    first = run_pipeline(parse_pipeline(CFG), tmp_path / "s")
    assert first.trainings
    version = Store.open(str(tmp_path / "s")).version
    with pytest.raises(PipelineConfigError) as info:
        run_pipeline(parse_pipeline(CFG), tmp_path / "s")
    assert info.value.key == "--store"
    assert Store.open(str(tmp_path / "s")).version == version
    again = run_pipeline(parse_pipeline({**CFG, "source": {"store": str(tmp_path / "s")}}), None)
    assert [t.training_id for t in again.trainings] == [t.training_id for t in first.trainings]
    assert all(t.adopted for t in again.trainings)
    assert again.result.matrix == first.result.matrix


def test_a_replay_prepared_before_another_process_replayed_is_refused_when_it_runs(tmp_path: Path) -> None:
    """The empty-store check is made again once the run holds its pipeline: a replay of the same
    pipeline that another process ran to the end between this one's preparation and its run
    made the store used."""
    late = Runner(parse_pipeline(CFG), tmp_path / "s")
    late.prepare()  # the store is empty now
    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump(CFG))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "modyn_store.app.cli.main", "run", str(cfg), "--store",
                           str(tmp_path / "s")], env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    version = Store.open(str(tmp_path / "s")).version
    with pytest.raises(PipelineConfigError) as info:
        for _ in late.run():
            pass
    assert info.value.key == "--store"
    assert Store.open(str(tmp_path / "s")).version == version
