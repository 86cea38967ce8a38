"""The description of a registered data set: :class:`DatasetSpec`.

Example
-------
>>> from modyn_store.app.datasets import DATASETS
>>> spec = DATASETS["elec2"]
>>> spec.task, spec.n_classes, spec.default_chunking
('binary', 2, '7d')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

__all__ = ["DatasetSpec", "Task"]

Task = Literal["binary", "multiclass"]


@dataclass(frozen=True)
class DatasetSpec:
    """What a data set is, where it comes from and how its loader shapes it.

    Parameters
    ----------
    name:
        Registry name (``DATASETS[name]``).
    task:
        ``"binary"`` or ``"multiclass"``; ``label`` holds ``0 .. n_classes - 1``.
    time:
        The meaning of the ``ts`` column, in words (unit and origin).
    feature_columns:
        The per-feature ``float32`` columns (``features`` is their encoded concatenation).
    n_classes:
        Number of classes of ``label``; ``None`` where it depends on the file (classes taken
        from the data unless given to the loader).
    n_features:
        Length of the ``features`` vector, or ``None`` where the set has no ``features`` column.
    source_url:
        Where the original data is published.
    license:
        Terms of use, in words.
    default_chunking:
        How to cut the stream into time slices (see :func:`modyn_store.app.datasets.chunk_index`).
    filename:
        The file looked up when ``load`` is given a folder.
    description:
        One paragraph: target, encoding of categoricals, handling of missing values.
    loader:
        The function ``loader(path, **kw) -> pa.Table`` behind :func:`modyn_store.app.datasets.load`.
    defaults:
        Keyword arguments the registry entry passes to ``loader`` (e.g. a label view).
    categorical_columns:
        Columns holding categorical codes (``int64``), one-hot encoded inside ``features``.
    """

    name: str
    task: Task
    time: str
    feature_columns: tuple[str, ...]
    n_classes: int | None
    n_features: int | None
    source_url: str
    license: str
    default_chunking: str
    filename: str
    description: str
    loader: Callable[..., pa.Table] = field(repr=False, compare=False)
    defaults: tuple[tuple[str, Any], ...] = ()
    categorical_columns: tuple[str, ...] = ()
