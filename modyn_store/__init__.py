"""modyn-store: an embedded, versioned dataset store for training on dynamic data.

Example
-------
>>> import pyarrow as pa
>>> import modyn_store
>>> store = modyn_store.Store.open("memory://init-doc", create=True)
>>> store.append(pa.table({"ts": [1, 2, 3]})).inserted
3
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
__version__ = "0.1.0"
