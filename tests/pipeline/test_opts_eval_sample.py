"""A pipeline's evaluation sample follows sample, fraction, stratify and seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modyn_store import Store
from modyn_store.app.pipeline import parse_pipeline, run_pipeline
from pipeline_helpers import tiny


def _run(tmp_path: Path, name: str, evaluation: dict[str, Any]) -> tuple[Any, Store]:
    cfg = parse_pipeline(tiny(name, source={"dataset": "elec2", "limit": 1500, "chunk": "14d"},
                              trigger={"name": "time", "every": "14d"},
                              evaluation={"slices": 2, "metric": "loss", **evaluation}))
    res = run_pipeline(cfg, tmp_path / name)
    return res, Store.open(str(tmp_path / name))


def _direct(store: Store, res: Any, **sample: Any) -> np.ndarray:
    import training
    from training.eval_sample import EvalSample

    m = training.evaluate(store, [t.training_id for t in res.trainings], training.time_slices(store, n=2),
                          inputs={"features": "features"}, metrics=("loss",), record=False,
                          sample=EvalSample(**sample))
    return np.array(m.matrix("loss"))


def test_sample_stratify_and_seed_pick_the_evaluated_rows(tmp_path: Path) -> None:
    res, store = _run(tmp_path, "smp", {"sample": 40, "stratify": True, "seed": 5})
    got = np.array(res.result.matrix)
    evals = store.read_table("evaluations")
    assert evals is not None and set(evals.column("n").to_pylist()) == {40}
    np.testing.assert_array_equal(got, _direct(store, res, size=40, stratify=True, seed=5))
    # the same sample size with another seed, or without stratification, evaluates other rows
    assert not np.array_equal(got, _direct(store, res, size=40, stratify=True, seed=0))
    assert not np.array_equal(got, _direct(store, res, size=40, stratify=False, seed=5))


def test_fraction_evaluates_that_share_of_each_slice(tmp_path: Path) -> None:
    res, store = _run(tmp_path, "frac", {"fraction": 0.25, "seed": 2})
    evals = store.read_table("evaluations")
    assert evals is not None
    n = evals.column("n").to_numpy()
    assert np.all((n > 0.2 * 750) & (n < 0.3 * 750))  # two slices of about 750 rows each
    np.testing.assert_array_equal(np.array(res.result.matrix), _direct(store, res, fraction=0.25, seed=2))
