"""The few methods policies need of a store snapshot, the store's scores and a model.

Policies import neither the store nor the training API: they read a snapshot, scores and a
model through these protocols (``Store.as_of(v)``, ``Store.scores`` and a trained module's
wrapper satisfy them).

Example
-------
>>> from modyn_store import Store
>>> from policies._protocols import SnapshotLike
>>> isinstance(Store.open("memory://protocols-doc", create=True).as_of(None), SnapshotLike)
True
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

__all__ = ["ModelLike", "ScoresLike", "SnapshotLike"]


@runtime_checkable
class SnapshotLike(Protocol):
    """What selection reads of a store snapshot (``Store.as_of(v)``)."""

    @property
    def version(self) -> int: ...

    def keys(self) -> np.ndarray: ...

    def count(self) -> int: ...

    def to_batches(
        self,
        columns: list[str] | None = None,
        filter: str | None = None,
        *,
        batch_size: int = 65536,
    ) -> Iterator[pa.RecordBatch]: ...

    def take(self, keys: Any, columns: list[str] | None = None) -> pa.Table: ...


@runtime_checkable
class ScoresLike(Protocol):
    """The store's per-sample scores (``Store.scores``)."""

    def as_of(self, version: int, name: str) -> pa.Table: ...


@runtime_checkable
class ModelLike(Protocol):
    """The current model as triggers see it: embeddings and logits of feature columns."""

    def embed(self, features: Mapping[str, np.ndarray]) -> np.ndarray: ...

    def logits(self, features: Mapping[str, np.ndarray]) -> np.ndarray: ...
