"""Replaying into a store that already holds data is refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from modyn_store import Store
from modyn_store.app.pipeline.config import parse_pipeline
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.runner import run_pipeline

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
