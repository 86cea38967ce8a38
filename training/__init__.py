"""Training on a store: materialize a train set into a loader, train, score, evaluate, reproduce,
load a recorded training's model.

Heavy modules (torch) load on first use of a name.

Example
-------
>>> import training
>>> callable(training.loader)
True
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DivergedError",
    "ErasedKeysError",
    "EvalSample",
    "Loader",
    "LoaderOptions",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "load_model",
    "loader",
    "reproduce",
    "score",
    "time_slices",
    "train",
]

_WHERE = {
    "DivergedError": "training.errors",
    "ErasedKeysError": "training.errors",
    "EvalSample": "training.eval_sample",
    "Loader": "training.loading",
    "LoaderOptions": "training.loading",
    "TrainConfig": "training.trainer",
    "TrainResult": "training.trainer",
    "evaluate": "training.evaluation",
    "load_model": "training.recorded",
    "loader": "training.loading",
    "reproduce": "training.reproduction",
    "score": "training.scoring",
    "time_slices": "training.evaluation",
    "train": "training.trainer",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
