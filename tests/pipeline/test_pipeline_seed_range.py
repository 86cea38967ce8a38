"""Every training seed a pipeline configuration allows reaches a valid selection seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from modyn_store.app.pipeline import parse_pipeline, run_pipeline
from modyn_store.app.pipeline.config import SEED_MAX
from modyn_store.app.pipeline.loop import selection_seed
from pipeline_helpers import tiny


@pytest.mark.parametrize("seed", [0, 7, 9_223_372_036_854, SEED_MAX])
def test_selection_seeds_stay_in_range_and_as_they_were(seed: int) -> None:
    for index in (0, 1, 5):
        s = selection_seed(seed, index)
        assert 0 <= s <= SEED_MAX
        assert s == (seed * 1_000_003 + index) & SEED_MAX  # the value selections always used


def test_the_largest_training_seed_selects_and_trains(tmp_path: Path) -> None:
    cfg = tiny("big-seed", selection={"name": "uniform", "ratio": 0.5},
               training={"epochs": 1, "batch_size": 256, "lr": 0.01, "seed": SEED_MAX},
               limits={"max_trainings": 2})
    res = run_pipeline(parse_pipeline(cfg), tmp_path / "s")
    assert len(res.trainings) == 2
    assert all(t.n_keys > 0 for t in res.trainings)
