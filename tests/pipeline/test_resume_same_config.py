"""A restarted pipeline adopts only trainings its own configuration recorded."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.app.pipeline.config import parse_pipeline
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.loop import PipelineLoop

BASE: dict[str, Any] = {"name": "doc", "source": {"dataset": "elec2"},
                        "model": {"name": "logreg", "params": {"in_features": 2, "n_classes": 2}},
                        "trigger": {"name": "data_amount", "every": 25}, "selection": {"name": "new_data"}}


def _store(name: str) -> Store:
    store = Store.open(f"memory://{name}", create=True)
    x = np.random.default_rng(0).standard_normal((60, 2)).astype(np.float32)
    store.append(pa.table({"ts": np.arange(60), "label": (x[:, 0] > 0).astype(np.int64),
                           "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
    return store


def test_same_configuration_adopts_its_trainings() -> None:
    store = _store("adopt-same")
    first = [t.training_id for t in PipelineLoop(parse_pipeline(BASE), store).process(0, store.version)]
    again = list(PipelineLoop(parse_pipeline(BASE), store).process(0, store.version))
    assert [t.training_id for t in again] == first
    assert all(t.adopted for t in again)


@pytest.mark.parametrize("change", [
    {"selection": {"name": "all_data"}},
    {"training": {"epochs": 3}},
    {"update": {"name": "retrain"}},
    {"trigger": {"name": "data_amount", "every": 30}},  # fires elsewhere: named as the trigger, not a cutoff
    {"model": {"name": "logreg", "params": {"in_features": 2, "n_classes": 3}}},
])
def test_other_configuration_under_the_same_name_is_refused(change: dict[str, Any]) -> None:
    store = _store(f"adopt-other-{sorted(change)[0]}")
    list(PipelineLoop(parse_pipeline(BASE), store).process(0, store.version))
    loop = PipelineLoop(parse_pipeline({**BASE, **change}), store)
    with pytest.raises(PipelineConfigError, match="another configuration"):
        list(loop.process(0, store.version))


def test_a_training_recorded_before_input_scales_is_adopted_only_without_them() -> None:
    """A record without ``standardize`` trained on raw inputs: a pipeline that scales them does
    not adopt it (its chain would mix the two), one with ``standardize: false`` does."""
    from types import SimpleNamespace

    store = _store("adopt-before-scale")
    scaled = PipelineLoop(parse_pipeline(BASE), store)
    old = {k: v for k, v in scaled.train_config("scratch").to_json().items() if k != "standardize"}
    record = SimpleNamespace(training_id="doc-0000", policy_params={}, config=old)
    with pytest.raises(PipelineConfigError, match="standardize"):
        scaled._check_same_pipeline(record)
    raw = PipelineLoop(parse_pipeline({**BASE, "training": {"standardize": False}}), store)
    raw._check_same_pipeline(record)  # adopted: the same configuration
