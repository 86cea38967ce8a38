"""The top-level API: a small, sorted __all__ whose names all resolve; light imports."""

from __future__ import annotations

import subprocess
import sys

import modyn_store


def test_all_is_sorted_and_resolves() -> None:
    assert modyn_store.__all__ == sorted(modyn_store.__all__)
    for name in modyn_store.__all__:
        assert getattr(modyn_store, name) is not None, name


def test_every_error_derives_from_the_root() -> None:
    for name in modyn_store.__all__:
        obj = getattr(modyn_store, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, modyn_store.ModynStoreError), name


def test_import_does_not_load_torch() -> None:
    code = "import sys, modyn_store; print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
