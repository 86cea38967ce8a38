"""Validation helpers of pipeline definitions: an error factory that knows YAML lines, typed values.

Example
-------
>>> ctx = _Ctx(None, ("grid", 0))
>>> _typed(ctx, ("training", "epochs"), 0, "int", lo=1)
Traceback (most recent call last):
...
modyn_store.app.pipeline.errors.PipelineConfigError: grid[0].training.epochs: expected a value >= 1, got 0
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.yamlsrc import MAX_DEFINITION_DEPTH, YamlDoc

__all__ = ["INT64_MAX", "MAX_DEFINITION_DEPTH", "RAY_ADDRESSES", "_Ctx", "_check_ints", "_fraction", "_mapping",
           "_names", "_shown", "_typed", "ray_address_problem"]

#: The largest integer a definition may hold (every ``int`` value is bounded by it unless its own
#: bound is smaller): seeds, counts and sizes all end up in 64-bit integers (catalog, numpy, torch).
INT64_MAX = 2**63 - 1


#: The most characters of a value an error message shows: a file that is not a definition (say
#: ``/etc/passwd``) reads as one long string, which must not be echoed whole.
SHOWN_CHARS = 80


def _shown(value: Any) -> str:
    """``repr(value)``, cut to :data:`SHOWN_CHARS` characters with the full length noted.

    >>> _shown("x" * 200)
    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... (202 characters)"
    """
    text = repr(value)
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}... ({len(text):,} characters)"


class _Ctx:
    """Error factory that knows the YAML lines and the key prefix."""

    def __init__(self, doc: YamlDoc | None, prefix: tuple[Any, ...]) -> None:
        self.doc = doc
        self.prefix = prefix

    def key(self, path: tuple[Any, ...]) -> str:
        out = ""
        for p in self.prefix + path:
            out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
        return out

    def error(self, path: tuple[Any, ...], message: str) -> PipelineConfigError:
        line = self.doc.line(self.prefix + path) if self.doc is not None else None
        return PipelineConfigError(self.key(path) or "<document>", message, line=line,
                                   source=self.doc.source if self.doc is not None else None)


def _mapping(ctx: _Ctx, path: tuple[Any, ...], value: Any, allowed: tuple[str, ...] | None) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        what = "a mapping" if ctx.prefix + path else "a pipeline definition (a YAML mapping of its settings)"
        raise ctx.error(path, f"expected {what}, got {type(value).__name__} {_shown(value)}")
    for k in value:
        if not isinstance(k, str):
            raise ctx.error(path, f"keys must be strings, got {k!r}")
        if allowed is not None and k not in allowed:
            raise ctx.error(path + (k,), f"unknown key; expected one of {list(allowed)}")
    return dict(value)


def _typed(ctx: _Ctx, path: tuple[Any, ...], value: Any, kind: str, *, lo: float | None = None,
           hi: float | None = None, choices: tuple[str, ...] | None = None, optional: bool = False) -> Any:
    if value is None:
        if optional:
            return None
        raise ctx.error(path, f"a value is required ({kind})")
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        lo = -INT64_MAX - 1 if lo is None else lo
        hi = INT64_MAX if hi is None else hi
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif kind == "bool":
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, str) and bool(value)
    if not ok:
        raise ctx.error(path, f"expected {'a non-empty string' if kind == 'str' else 'a ' + kind}, "
                              f"got {type(value).__name__} {_shown(value)}")
    if lo is not None and value < lo:
        raise ctx.error(path, f"expected a value >= {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ctx.error(path, f"expected a value <= {hi}, got {value!r}")
    if choices is not None and value not in choices:
        raise ctx.error(path, f"expected one of {list(choices)}, got {_shown(value)}")
    return value


def _check_ints(ctx: _Ctx, path: tuple[Any, ...], value: Any) -> None:
    """Refuse any integer outside [-2^63, 2^63-1] in a definition's plain tree (policy and model
    parameters included), naming its dotted key, and a tree nested more than
    :data:`MAX_DEFINITION_DEPTH` levels deep (its values are recorded with each training as JSON)."""
    if isinstance(value, (Mapping, list, tuple)) and len(path) >= MAX_DEFINITION_DEPTH:
        raise ctx.error(path[:3], f"nested more than {MAX_DEFINITION_DEPTH} levels deep (each mapping or list "
                                  "inside another is one level); flatten it")
    if isinstance(value, int) and not isinstance(value, bool):
        if not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise ctx.error(path, f"expected an integer in [-2^63, 2^63-1], got {value!r}")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _check_ints(ctx, path + (k,), v)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_ints(ctx, path + (i,), v)


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _fraction(ctx: _Ctx, path: tuple[Any, ...], v: Any) -> float | None:
    v = _typed(ctx, path, v, "float", optional=True)
    if v is not None and not 0 < v <= 1:
        raise ctx.error(path, f"expected a share in (0, 1], got {v!r}")
    return v


#: The forms of a Ray address a pipeline takes, in words.
RAY_ADDRESSES = "'auto', 'local', 'ray://HOST:PORT' (Ray Client) or 'HOST:PORT' (a cluster's GCS address)"
_HOST_PORT = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s:/\[\]@]+)):(?P<port>[0-9]{1,5})")


def ray_address_problem(address: Any) -> str | None:
    """Why ``address`` is not a Ray address ``ray.init(address=...)`` takes, or ``None`` if it is.

    Ray (``ray.init``) reads ``"auto"`` (join the running cluster), ``"local"`` (a cluster on this
    machine), an address with a scheme (``"ray://HOST:PORT"``: Ray Client; ``http(s)://`` is
    refused by Ray itself, other schemes name a client-builder module, which pipelines do not
    take) and a bare ``"HOST:PORT"`` (a cluster's GCS address, split at its last colon; IPv6 in
    brackets). A host without a port is refused by Ray (``Invalid address format``), as is a
    port that is not a number from 1 to 65535.

    >>> ray_address_problem("ray://head:10001") is None, ray_address_problem("[::1]:6379") is None
    (True, True)
    >>> ray_address_problem("head")
    "not HOST:PORT (no port); expected 'auto', 'local', 'ray://HOST:PORT' (Ray Client) or 'HOST:PORT' (a cluster's GCS address)"
    """
    if not isinstance(address, str) or not address.strip():
        return f"expected {RAY_ADDRESSES}"
    if address in ("auto", "local"):
        return None
    rest = address
    if "://" in address:
        scheme, rest = address.split("://", 1)
        if scheme != "ray":
            return f"Ray connects to a cluster with the ray:// scheme, not {scheme}://; expected {RAY_ADDRESSES}"
    m = _HOST_PORT.fullmatch(rest)
    if m is None:
        why = "no port" if ":" not in rest else "a host without spaces, slashes or @, and a numeric port"
        return f"not HOST:PORT ({why}); expected {RAY_ADDRESSES}"
    if not 1 <= int(m.group("port")) <= 65535:
        return f"port {int(m.group('port'))} is not in 1 .. 65535; expected {RAY_ADDRESSES}"
    return None
