"""Input checks shared by the store's entry points."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store.core.errors import InvalidArgumentError, InvalidNameError

__all__ = ["NAME_PATTERN", "as_keys", "check_filter", "check_name"]

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


def check_filter(filter: object, *, name: str = "filter") -> str:
    """A user row filter checked to be one SQL expression, returned wrapped in parentheses.

    Lance pastes a filter into ``SELECT ... WHERE <filter>`` and ignores trailing clauses, so
    ``"label = 1) OR (true"`` or ``"x = 1 LIMIT 1"`` would otherwise parse. Parentheses must
    balance outside string literals and quoted identifiers; ``;`` and comments are refused. The
    wrapped result can only parse as a single expression.

    Example
    -------
    >>> check_filter("label = 1 OR ts > 5")
    '(label = 1 OR ts > 5)'
    """
    from modyn_store.core.errors import InvalidFilterError

    if not isinstance(filter, str) or not filter.strip():
        raise InvalidArgumentError(name, filter, "a non-empty SQL filter expression or None")
    depth = 0
    quote: str | None = None
    i, n = 0, len(filter)
    while i < n:
        c = filter[i]
        if quote is not None:
            if c == quote:
                if i + 1 < n and filter[i + 1] == quote:  # '' or "" escapes the quote
                    i += 1
                else:
                    quote = None
        elif c in ("'", '"', "`"):
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                raise InvalidFilterError(f"invalid {name} {filter!r}: ')' at offset {i} closes nothing")
        elif c == ";" or filter.startswith("--", i) or filter.startswith("/*", i):
            raise InvalidFilterError(f"invalid {name} {filter!r}: ';' and comments are not allowed in a filter")
        i += 1
    if quote is not None:
        raise InvalidFilterError(f"invalid {name} {filter!r}: unterminated {quote} quote")
    if depth:
        raise InvalidFilterError(f"invalid {name} {filter!r}: {depth} unclosed '('")
    return f"({filter})"
