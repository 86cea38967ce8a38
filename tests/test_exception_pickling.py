"""Every exception class of ``modyn_store``, ``training``, ``policies`` and ``engine`` with a custom
``__init__`` survives pickling with its message, its attributes and its notes: such an error raised
in a worker process, a Ray task or a DDP rank reaches the caller as itself, not as an opaque
unpickling error. The classes are found by walking the packages, so a new one is covered."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
from typing import Any

import numpy as np
import pytest

_PACKAGES = ("modyn_store", "training", "policies", "engine")

#: a sample argument per annotation (as written in the signature; annotations are strings)
_SAMPLES: dict[str, Any] = {
    "str": "some.key",
    "int": 7,
    "int | None": 7,
    "float": 1.5,
    "bytes": b"stamp",
    "str | None": "pipeline.yaml",
    "np.ndarray": np.array([5, 2, 9], dtype=np.int64),
    "Any": ("any", 3),
    "Path_": ("trigger", 0, "every"),
}


def _exception_classes() -> list[type[BaseException]]:
    """The exception classes defined at module level in the packages whose ``__init__`` is the
    project's own (defined by the class or a project base)."""
    found: dict[str, type[BaseException]] = {}
    for pkg_name in _PACKAGES:
        pkg = importlib.import_module(pkg_name)
        names = [pkg_name] + [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg_name + ".")
                              if not m.name.endswith("__main__")]
        for name in names:
            module = importlib.import_module(name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ != name or not issubclass(cls, BaseException):
                    continue
                if any("__init__" in base.__dict__ and base.__module__.split(".")[0] in _PACKAGES
                       for base in cls.__mro__):
                    found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [found[k] for k in sorted(found)]


_CLASSES = _exception_classes()


def _instance(cls: type[BaseException]) -> BaseException:
    """``cls`` built from sample arguments, every parameter given (keyword-only ones too)."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
        assert ann in _SAMPLES, f"{cls.__qualname__}({p.name}: {ann}): add a sample for {ann!r}"
        if p.kind == p.KEYWORD_ONLY:
            kwargs[p.name] = _SAMPLES[ann]
        else:
            args.append(_SAMPLES[ann])
    return cls(*args, **kwargs)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype \
            and np.array_equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def test_the_known_classes_are_found() -> None:
    names = {c.__name__ for c in _CLASSES}
    assert {"PipelineConfigError", "SourceError", "ChecksumMismatchError", "DamagedEntryError",
            "DataUnavailableError", "ErasedKeysError", "DivergedError", "InvalidArgumentError",
            "EngineInputError"} <= names


@pytest.mark.parametrize("cls", _CLASSES, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_exception_round_trips_through_pickle(cls: type[BaseException]) -> None:
    exc = _instance(cls)
    if hasattr(exc, "add_note"):  # Python >= 3.11
        exc.add_note("raised in a worker")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls
    assert str(back) == str(exc)
    assert _same(back.args, exc.args)
    assert _same(vars(back), vars(exc))  # the attributes (and the notes)
