"""A drift trigger asks the runner for what its ``warmup_trigger`` needs.

The runner reads each delta with ``trigger.columns`` and ``trigger.reads_labels`` and passes
the model only when ``trigger.requires`` holds ``"model"``: a drift trigger forwards its
warm-up trigger's columns, labels and requirements (as composites do for their members),
while its configuration still names only the columns it compares.
"""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
from policy_testkit import ThresholdModel

from policies import DataDrift, TriggerInput, from_config


def _drift(warmup_trigger: dict) -> DataDrift:  # type: ignore[type-arg]
    return DataDrift(columns=["x"], metric="mean_shift", decision="threshold", threshold=3.0,
                     window=50, every=50, warmup=1, warmup_trigger=warmup_trigger)


PERFORMANCE = {"name": "performance", "columns": ["y"], "every": 10, "threshold": 0.9,
               "bootstrap": False}


def test_a_warmup_trigger_s_columns_labels_and_model_are_asked_for() -> None:
    t = _drift(PERFORMANCE)
    assert t.columns == ("x", "y")
    assert t.reads_labels
    assert "model" in t.requires
    quiet = _drift({"name": "data_amount", "every": 10})
    assert quiet.columns == ("x",) and not quiet.reads_labels and quiet.requires == frozenset()


def test_the_config_still_names_only_the_compared_columns() -> None:
    t = _drift(PERFORMANCE)
    assert t.to_config()["columns"] == ["x"]
    again = from_config("trigger", t.to_config())
    assert again == t and again.columns == ("x", "y") and again.clone() == t


def test_an_embedding_drift_warmup_trigger_gets_the_model_the_runner_passes() -> None:
    """Fed like the runner feeds triggers: the warm-up trigger compares embeddings, so the
    model must be passed, else it never evaluates and never fires."""
    from modyn_store import Store

    store = Store.open(f"memory://warmup-parts-{uuid.uuid4().hex}", create=True)
    x = np.concatenate([np.zeros(60), np.full(60, 10.0)]) + np.tile([0.0, 0.1, -0.1], 40)
    for v in range(4):
        part = slice(30 * v, 30 * (v + 1))
        store.append(pa.table({"key": np.arange(120)[part], "ts": np.arange(120)[part],
                               "x": x[part]}))
    inner = {"name": "data_drift", "columns": ["x"], "embeddings": True, "metric": "mean_shift",
             "decision": "threshold", "threshold": 3.0, "window": 20, "every": 20}
    t = DataDrift(columns=["x"], metric="mean_shift", decision="threshold", threshold=3.0,
                  window=200, every=50, warmup_trigger=inner)
    fired = []
    for v in range(1, store.version + 1):
        d = store.delta(v - 1, v, columns=list(t.columns) or None, labels=t.reads_labels)
        model = ThresholdModel() if "model" in t.requires else None
        fired += t.fire(TriggerInput.from_delta(d, columns=t.columns), model)
    assert [f.reason.startswith("warm-up") for f in fired] == [True]
