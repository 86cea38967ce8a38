"""Input checks shared by the store's entry points."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store.core.errors import InvalidArgumentError, InvalidNameError

__all__ = ["as_keys", "check_name", "NAME_PATTERN"]

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")


def check_name(kind: str, name: object) -> str:
    """Validate a tag, score, table or training name: a letter, then letters, digits, ``_.-``.

    Example
    -------
    >>> check_name("tag", "release-1")
    'release-1'
    """
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
        raise InvalidNameError(
            kind,
            name,
            "a name of 1-128 characters: a letter, then letters, digits, '_', '.', '-' "
            "(no '..', no '/')",
        )
    return name


def as_keys(keys: Any, *, name: str = "keys") -> np.ndarray:
    """Coerce user keys (list, NumPy or Arrow array) to a 1-D int64 array; reject nulls and floats."""
    if isinstance(keys, (pa.Array, pa.ChunkedArray)):
        if keys.null_count:
            raise InvalidArgumentError(name, f"{keys.null_count} null keys", "non-null int64 keys")
        keys = keys.to_numpy(zero_copy_only=False)
    if isinstance(keys, (int, np.integer)):
        keys = [keys]
    arr = np.asarray(keys)
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if arr.ndim != 1:
        raise InvalidArgumentError(name, f"shape {arr.shape}", "a one-dimensional sequence of keys")
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.integer):
        raise InvalidArgumentError(name, f"dtype {arr.dtype}", "integer keys (int64)")
    return arr.astype(np.int64, copy=False)
