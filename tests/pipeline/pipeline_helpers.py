"""Small pipelines on tiny slices of the bundled Elec2 stream."""

from __future__ import annotations

from typing import Any

import pytest


def tiny(name: str = "tiny", **over: Any) -> dict[str, Any]:
    """A pipeline over the first 3,000 half-hours of Elec2 (two-week versions) with a logistic model."""
    cfg: dict[str, Any] = {
        "name": name,
        "source": {"dataset": "elec2", "limit": 3000, "chunk": "14d"},
        "model": {"name": "logreg"},
        "trigger": {"name": "time", "every": "14d"},
        "selection": {"name": "new_data"},
        "update": {"name": "finetune"},
        "training": {"epochs": 1, "batch_size": 256, "lr": 0.01},
        "evaluation": {"slices": 4},
    }
    for k, v in over.items():
        cfg[k] = v
    return cfg


@pytest.fixture
def tiny_cfg() -> dict[str, Any]:
    return tiny()
