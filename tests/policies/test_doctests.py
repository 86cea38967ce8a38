"""The runnable examples in the docstrings of ``policies`` pass."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import policies

MODULES = ["policies", *sorted(m.name for m in pkgutil.iter_modules(policies.__path__, "policies."))]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
