"""Rows a trigger resumed from its saved state reads back by key (:data:`policies.base.RowSource`).

A trigger's saved state names the rows it holds (``data_drift``'s windows, ``performance``'s
labelled rows waiting for an evaluation) by key, never by value (features or labels):
on a restart they are read from the store as of the version the trigger was last fed, so rows
erased since (erased at every version) are left out, and no erased feature value or label
outlives its erasure in a saved state.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from engine._search import sorted_unique
from policies import TriggerInput
from policies.base import RowSource

__all__ = ["store_rows"]


def store_rows(store: Any) -> RowSource:
    """A :data:`~policies.base.RowSource` reading ``store``: the rows of the keys live as of the
    version asked for, with their event time, their label (when the store has a ``label``
    column) and the feature columns asked for."""

    def rows(keys: np.ndarray, columns: Sequence[str], version: int) -> TriggerInput:
        snap = store.as_of(int(version))
        want = sorted_unique(np.asarray(keys, np.int64))
        live = want[snap.contains(want)] if want.size else want
        schema = store.schema
        label = ["label"] if schema is not None and "label" in schema.names else []
        table = snap.take(live, columns=list(dict.fromkeys(["key", "ts", *label, *columns])))
        delta = SimpleNamespace(inserted=table, end=int(version), deleted=np.empty(0, np.int64),
                                erased=np.empty(0, np.int64))
        return TriggerInput.from_delta(delta, columns=list(columns))

    return rows
