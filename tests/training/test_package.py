"""The package's public names resolve, and the entry points stay callable after submodule imports."""

from __future__ import annotations

import importlib

import training


def test_every_public_name_resolves() -> None:
    assert training.__all__ == sorted(training.__all__)
    for name in training.__all__:
        assert getattr(training, name) is not None, name


def test_entry_points_are_functions_after_importing_every_module() -> None:
    for mod in ("cache", "columns", "errors", "evaluation", "loading", "materialize", "reproduction",
                "scoring", "trainer", "workers"):
        importlib.import_module(f"training.{mod}")
    for name in ("loader", "train", "score", "evaluate", "reproduce", "time_slices"):
        assert callable(getattr(training, name)) and not isinstance(getattr(training, name), type(training)), name
