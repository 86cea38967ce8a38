"""Integer literals pasted into Lance SQL filters (the store's own filters, never a user's).

Lance reads ``-9223372036854775808`` as the negation of ``9223372036854775808``, a number
above int64 that it makes a Float64 and then refuses to compare with an int64 column. It folds
``(-9223372036854775807 - 1)`` to an Int64 constant, so the comparison stays an int64 one and
scalar indexes and pushdown still apply.

Example
-------
>>> sql_int(-(1 << 63))
'(-9223372036854775807 - 1)'
>>> key_range(-5, 7)
'key >= -5 AND key <= 7'
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["INT64_MIN", "key_range", "keys_predicate", "sql_int"]

INT64_MIN = -(1 << 63)
_PREDICATE_CHUNK = 4096


def sql_int(value: int) -> str:
    """An int64 literal for a Lance filter."""
    v = int(value)
    return f"({v + 1} - 1)" if v == INT64_MIN else str(v)


def key_range(lo: int, hi: int, column: str = "key") -> str:
    """The predicate ``lo <= column <= hi`` with int64-safe literals."""
    return f"{column} >= {sql_int(lo)} AND {column} <= {sql_int(hi)}"


def keys_predicate(keys: Any, column: str = "key") -> Iterator[str]:
    """SQL predicates ``column IN (...)`` over the int64 array ``keys``, in chunks Lance
    parses quickly."""
    for start in range(0, keys.size, _PREDICATE_CHUNK):
        chunk = keys[start : start + _PREDICATE_CHUNK]
        yield f"{column} IN ({','.join(sql_int(k) for k in chunk)})"
