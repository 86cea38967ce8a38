"""The store core: versioned Lance tables, snapshots, scores, maintenance, train sets, trainings.

This layer sits just above :mod:`engine` and below :mod:`policies`, :mod:`training` and the
application (:mod:`modyn_store.app`). It imports neither of them; ``modyn_store`` re-exports its
public names.

Example
-------
>>> import pyarrow as pa
>>> from modyn_store.core import Store
>>> Store.open("memory://core-doc", create=True).append(pa.table({"ts": [1]})).version
1
"""

from modyn_store.core.errors import (
    ConflictError,
    CorruptionError,
    DataUnavailableError,
    DuplicateKeyError,
    FormatVersionError,
    InvalidArgumentError,
    InvalidFilterError,
    InvalidNameError,
    ModynStoreError,
    NestedWriteError,
    NotAStoreError,
    ReadOnlyStoreError,
    SchemaMismatchError,
    UnknownKeyError,
    UnknownVersionError,
)
from modyn_store.core.records import Delta, Diff, ErasureReport, VacuumReport, VersionRecord
from modyn_store.core.snapshot import Snapshot
from modyn_store.core.store import Store, Transaction
from modyn_store.core.trainset import TrainSet

__all__ = [
    "ConflictError",
    "CorruptionError",
    "DataUnavailableError",
    "Delta",
    "Diff",
    "DuplicateKeyError",
    "ErasureReport",
    "FormatVersionError",
    "InvalidArgumentError",
    "InvalidFilterError",
    "InvalidNameError",
    "ModynStoreError",
    "NestedWriteError",
    "NotAStoreError",
    "ReadOnlyStoreError",
    "SchemaMismatchError",
    "Snapshot",
    "Store",
    "TrainSet",
    "Transaction",
    "UnknownKeyError",
    "UnknownVersionError",
    "VacuumReport",
    "VersionRecord",
]
