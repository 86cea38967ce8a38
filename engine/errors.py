"""The one error the engine raises on purpose, and the argument-error base it shares with the store.

The engine imports nothing from :mod:`modyn_store`, so it has its own error type. It and
``modyn_store.core.errors.InvalidArgumentError`` derive from :class:`ArgumentError`: the same
``(name, value, expected)`` triple and message, so the store layer translates one to the other.

Example
-------
>>> from engine.errors import EngineInputError
>>> try:
...     raise EngineInputError("k", -1, "an integer >= 0")
... except ValueError as exc:
...     print(exc, "|", exc.name, exc.value, exc.expected)
invalid k=-1: expected an integer >= 0 | k -1 an integer >= 0
"""

from __future__ import annotations

from typing import Any

__all__ = ["ArgumentError", "EngineInputError"]


class ArgumentError(ValueError):
    """An argument outside what is accepted, naming the argument, the value and what would be
    valid. The base of :class:`EngineInputError` and of the store's ``InvalidArgumentError``, so
    both carry the same ``(name, value, expected)`` triple, message and pickling.

    Parameters
    ----------
    name:
        The argument's name; for one bad element of an array, ``"name[index]"``; for nested
        configuration, a dotted path such as ``trigger.every``.
    value:
        The offending value (for a bad array shape or dtype, a short description of the array).
    expected:
        What would be valid, in words.
    """

    def __init__(self, name: str, value: Any, expected: str) -> None:
        self.name = name
        self.value = value
        self.expected = expected
        shown = repr(value)
        if len(shown) > 200:
            shown = shown[:197] + "..."
        super().__init__(f"invalid {name}={shown}: expected {expected}")

    def __reduce__(self) -> tuple[Any, ...]:  # keep pickling (multiprocessing, Ray) working
        return (type(self), (self.name, self.value, self.expected), self.__dict__)


class EngineInputError(ArgumentError):
    """An argument given to an engine kernel is outside what the kernel accepts."""
