"""Package-level contracts: exports, imports, caching, error type, Numba settings untouched."""

from __future__ import annotations

import ast
import importlib
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from numba.core.dispatcher import Dispatcher

import engine
from engine import EngineInputError

ENGINE = Path(engine.__file__).parent
MODULES = sorted(p.stem for p in ENGINE.glob("*.py") if p.stem != "__init__")


def test_all_is_sorted_and_resolves() -> None:
    assert engine.__all__ == sorted(engine.__all__)
    for name in engine.__all__:
        assert getattr(engine, name) is not None


@pytest.mark.parametrize("module", MODULES)
def test_imports_only_numpy_numba_and_stdlib(module: str) -> None:
    tree = ast.parse((ENGINE / f"{module}.py").read_text())
    allowed = {"numpy", "numba", "engine", "__future__"} | set(sys.stdlib_module_names)
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        for name in names:
            assert name.split(".")[0] in allowed, f"{module} imports {name}"


@pytest.mark.parametrize("module", MODULES)
def test_every_kernel_is_cached(module: str) -> None:
    mod = importlib.import_module(f"engine.{module}")
    kernels = [v for v in vars(mod).values() if isinstance(v, Dispatcher) and v.__module__ == mod.__name__]
    for k in kernels:
        assert type(k._cache).__name__ == "FunctionCache", f"{module}.{k.__name__} lacks cache=True"


def test_import_changes_no_numba_setting_and_compiles_nothing() -> None:
    code = (
        "import numba, numba.core.config as c\n"
        "keys = [k for k in dir(c) if k.isupper()]\n"
        "before = {k: repr(getattr(c, k)) for k in keys}\n"
        "import engine\n"
        "from numba.core.dispatcher import Dispatcher\n"
        "import engine._ranked as s\n"
        "assert before == {k: repr(getattr(c, k)) for k in keys}\n"
        "assert not s.select_core.overloads, 'compiled at import'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "ok", out.stderr


def test_error_message_attributes_and_pickle() -> None:
    err = EngineInputError("k", -1, "an integer >= 0")
    assert isinstance(err, ValueError)
    assert str(err) == "invalid k=-1: expected an integer >= 0"
    assert (err.name, err.value, err.expected) == ("k", -1, "an integer >= 0")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.name == "k"
    long = EngineInputError("x", "y" * 500, "short")
    assert len(str(long)) < 260


@pytest.mark.parametrize("module", ["engine", *(f"engine.{m}" for m in MODULES)])
def test_docstring_examples_run(module: str) -> None:
    import doctest

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
