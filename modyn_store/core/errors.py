"""The errors modyn-store raises on purpose.

Every error derives from :class:`ModynStoreError`; the ones caused by bad input also derive from
the matching built-in (``ValueError``, ``KeyError``, ``TypeError``) so generic handlers keep
working. Messages name the offending argument, its value and what would be valid.

Example
-------
>>> from modyn_store.core.errors import InvalidArgumentError, ModynStoreError
>>> try:
...     raise InvalidArgumentError("k", -1, "an integer >= 0")
... except ModynStoreError as exc:
...     print(exc)
invalid k=-1: expected an integer >= 0
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine.errors import ArgumentError

__all__ = [
    "ClosedError",
    "ConflictError",
    "CorruptionError",
    "DataUnavailableError",
    "DuplicateKeyError",
    "FormatVersionError",
    "InvalidArgumentError",
    "InvalidFilterError",
    "InvalidNameError",
    "ModynStoreError",
    "NestedWriteError",
    "NotAStoreError",
    "ReadOnlyStoreError",
    "SchemaMismatchError",
    "UnknownKeyError",
    "UnknownVersionError",
    "engine_errors",
]


class ModynStoreError(Exception):
    """Root of every error raised on purpose by modyn-store."""


class InvalidArgumentError(ModynStoreError, ArgumentError):
    """An argument has a value outside its valid range or choices.

    Parameters
    ----------
    name:
        The argument's name (a dotted path for nested configuration, e.g. ``trigger.every``).
    value:
        The value that was given.
    expected:
        What would be valid, in words (e.g. ``"one of 'uniform', 'top'"``).
    """


class InvalidNameError(InvalidArgumentError):
    """A tag, table, score or other name is not a safe identifier."""


class InvalidFilterError(ModynStoreError, ValueError):
    """A row filter expression could not be parsed or refers to unknown columns."""


class SchemaMismatchError(ModynStoreError, ValueError):
    """Appended data does not match the store's schema."""


class DuplicateKeyError(ModynStoreError, ValueError):
    """A key occurs twice in one batch, or already exists in the store."""


class UnknownKeyError(ModynStoreError, KeyError):
    """A key is not live in the store (never inserted, deleted or erased)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown key"


class UnknownVersionError(ModynStoreError, KeyError):
    """A version number, tag or time does not name a committed store version."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown version"


class DataUnavailableError(ModynStoreError):
    """Rows of an old version were purged by ``vacuum`` and cannot be returned.

    The attribute ``keys`` holds the keys that are unavailable.
    """

    def __init__(self, message: str, keys: Any = None) -> None:
        super().__init__(message)
        self.keys = keys

    def __reduce__(self) -> tuple[Any, ...]:  # crosses processes (multiprocessing, Ray, DDP) intact
        return (type(self), (str(self.args[0]) if self.args else "", self.keys), self.__dict__)


class NotAStoreError(ModynStoreError, FileNotFoundError):
    """The given location does not hold a modyn-store store."""


class FormatVersionError(ModynStoreError):
    """The store was written by a newer, unsupported format version."""


class StorageUnavailableError(ModynStoreError, OSError):
    """The store's location cannot be reached (object-store endpoint down, refused or silent)."""


class ClosedError(ModynStoreError, ValueError):
    """An object was used after its ``close()`` (e.g. a closed vector index)."""


class StorageAccessError(ModynStoreError, PermissionError):
    """The object store refused the store's requests: the credentials were not accepted (an
    unknown access key, a wrong secret) or grant no access to the store's bucket and prefix."""


class ConflictError(ModynStoreError):
    """A concurrent writer holds the store; the write was not applied."""


class NestedWriteError(ConflictError):
    """A write was started inside an open transaction (or another write) of the same store,
    through the same handle or another handle of that store, in the thread that holds its writer
    lock: it could never get the lock, so it is refused at once. Finish the block first, or
    write from another thread."""


class CorruptionError(ModynStoreError):
    """Stored files disagree with the version log (damaged, missing or rolled back).

    Raised instead of returning an answer that may be wrong; ``modyn-store verify`` reports
    every finding. The store never repairs such damage silently.
    """


class ReadOnlyStoreError(ModynStoreError, PermissionError):
    """A write was asked of a store whose folder cannot be written (read-only mount or permissions)."""


@contextmanager
def engine_errors() -> Iterator[None]:
    """Re-raise an ``engine.EngineInputError`` from inside the block as :class:`InvalidArgumentError`.

    The engine imports nothing of ours, so its kernels raise their own ``ValueError``; every call
    site in the middle layer runs them inside this block, so users only see ``ModynStoreError``
    subclasses (same ``name``, ``value``, ``expected`` and message; the original is the cause).

    Example
    -------
    >>> from engine import top_k
    >>> with engine_errors():
    ...     top_k([1.0, 2.0], -1)
    Traceback (most recent call last):
    ...
    modyn_store.core.errors.InvalidArgumentError: invalid k=-1: expected an integer >= 0
    """
    from engine.errors import EngineInputError

    try:
        yield
    except EngineInputError as exc:
        raise InvalidArgumentError(exc.name, exc.value, exc.expected) from exc
