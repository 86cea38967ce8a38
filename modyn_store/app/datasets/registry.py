"""The registry of data sets: :data:`DATASETS` and :func:`load`.

Example
-------
>>> from modyn_store.app.datasets import DATASETS, load
>>> sorted(DATASETS)[:3]
['acs_employment_ma', 'arxiv', 'cloc']
>>> t = load("noaa_weather", "../shared/data")  # doctest: +SKIP
>>> t.column_names[:3]  # doctest: +SKIP
['key', 'ts', 'label']
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pyarrow as pa

from modyn_store.app.datasets.spec import DatasetSpec
from modyn_store.core.errors import InvalidArgumentError, InvalidNameError

__all__ = ["DATASETS", "load", "register"]

DATASETS: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to :data:`DATASETS` (its name must be new)."""
    if spec.name in DATASETS:
        raise InvalidNameError("name", spec.name, "a name not yet registered")
    DATASETS[spec.name] = spec
    return spec


def load(name: str, path: str | Path | None = None, **kw: Any) -> pa.Table:
    """Load the registered data set ``name`` from ``path`` as a time-ordered table.

    Parameters
    ----------
    name:
        A key of :data:`DATASETS`.
    path:
        The data file or the folder holding it (``spec.filename``). Data sets with a download
        source accept ``None`` and fetch into their cache folder.
    **kw:
        Options of the data set's loader (e.g. ``standardize=False``); they override the
        registry entry's defaults.

    Raises
    ------
    InvalidNameError
        ``name`` is not registered.
    InvalidArgumentError
        An option is not one the loader takes, or ``path`` is missing where it is required.

    Examples
    --------
    >>> from modyn_store.app.datasets import load
    >>> load("nope")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    modyn_store.core.errors.InvalidNameError: invalid name='nope': expected one of 'acs_employment_ma', ...
    """
    spec = DATASETS.get(name)
    if spec is None:
        choices = ", ".join(repr(n) for n in sorted(DATASETS))
        raise InvalidNameError("name", name, f"one of {choices}")
    params = inspect.signature(spec.loader).parameters
    accepted = [p for p in params if p != "path"]
    for option in kw:
        if option not in accepted:
            raise InvalidArgumentError(option, kw[option], f"an option of {name!r}: one of {', '.join(accepted)}")
    options = {**dict(spec.defaults), **kw}
    if path is None:
        default = params["path"].default
        if default is inspect.Parameter.empty:
            raise InvalidArgumentError("path", None, f"the path of {spec.filename!r} or its folder ({spec.source_url})")
    return spec.loader(path, **options) if path is not None else spec.loader(**options)
