"""User values kept as JSON (training records' mappings, a version's details): checked and
encoded in one place, so a value JSON cannot hold is refused with a typed error, naming the
argument, before anything is written.

``json`` encodes and decodes nested containers recursively, so a value nested thousands of levels
deep raises ``RecursionError`` (and one stored would be unreadable); values are limited to
:data:`MAX_JSON_DEPTH` levels, far more than any configuration or metrics need. Stored JSON (log
records, pointers, cache metadata) is read with :func:`read_json`, which turns a file nested too
deep to decode (damaged or crafted) into the ``ValueError`` its readers report as damage.

Example
-------
>>> plain_json("metrics", {"acc": 0.5, "per_class": [0.4, 0.6]})
'{"acc": 0.5, "per_class": [0.4, 0.6]}'
>>> deep: list = []
>>> for _ in range(MAX_JSON_DEPTH):
...     deep = [deep]
>>> plain_json("metrics", {"x": deep})
Traceback (most recent call last):
...
modyn_store.core.errors.InvalidArgumentError: invalid metrics='a value nested more than 100 levels deep': expected JSON-serializable plain values nested at most 100 levels deep (each mapping or list inside another is one level)
"""

from __future__ import annotations

import json
from typing import Any

from modyn_store.core.errors import InvalidArgumentError

__all__ = ["MAX_JSON_DEPTH", "plain_json", "read_json"]

#: how many mappings and lists a stored JSON value may hold inside one another
MAX_JSON_DEPTH = 100


def _too_deep(value: Any) -> bool:
    """Whether ``value`` nests containers more than :data:`MAX_JSON_DEPTH` levels deep (a value
    that holds itself, however deep, counts as too deep). Iterative: no recursion limit."""
    deepest: dict[int, int] = {}  # id -> the deepest level it was walked at
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        obj, level = stack.pop()
        if isinstance(obj, dict):
            children: Any = obj.values()
        elif isinstance(obj, (list, tuple)):
            children = obj
        else:
            continue
        if level > MAX_JSON_DEPTH:
            return True
        if deepest.get(id(obj), 0) >= level:  # walked as deep already (a shared or cyclic value)
            continue
        deepest[id(obj)] = level
        stack.extend((c, level + 1) for c in children)
    return False


def plain_json(name: str, value: Any, *, sort_keys: bool = True) -> str:
    """``value`` as JSON text, or :class:`InvalidArgumentError` naming ``name`` when it holds
    something JSON cannot (objects, keys that are not text or numbers, a reference to itself) or
    nests more than :data:`MAX_JSON_DEPTH` levels deep."""
    expected = (f"JSON-serializable plain values nested at most {MAX_JSON_DEPTH} levels deep (each mapping or "
                "list inside another is one level)")
    if _too_deep(value):
        raise InvalidArgumentError(name, f"a value nested more than {MAX_JSON_DEPTH} levels deep", expected)
    try:
        return json.dumps(value, sort_keys=sort_keys)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArgumentError(name, value, expected) from exc


def read_json(raw: str | bytes | bytearray) -> Any:
    """``json.loads(raw)``, but a text nested too deep for the decoder raises ``ValueError``
    (as any other text that is not JSON does) instead of ``RecursionError``.

    >>> read_json("[" * 100_000 + "]" * 100_000)
    Traceback (most recent call last):
    ...
    ValueError: JSON nested too deep to decode (maximum recursion depth exceeded while decoding a JSON array from a unicode string)
    """
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise ValueError(f"JSON nested too deep to decode ({exc})") from exc
