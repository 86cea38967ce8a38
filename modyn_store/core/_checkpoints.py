"""Streamed checkpoint bytes: zstd frames hashed as they are written or read, never held whole;
and the check that a state dict holds only what ``torch.load(weights_only=True)`` reads back.

Example
-------
>>> import io, zstandard
>>> out = io.BytesIO()
>>> w = Sha256Writer(out)
>>> with zstandard.ZstdCompressor().stream_writer(w, closefd=False) as zw:
...     _ = zw.write(b"weights")
>>> raw, digest, bad, complete = unzip_hashed(io.BytesIO(out.getvalue()))
>>> raw.read(), digest == w.sha256.hexdigest(), bad, complete
(b'weights', True, None, True)
>>> import torch
>>> check_state({"w": torch.zeros(2), "meta": {"epochs": 3, "shape": (2,)}})
>>> check_state({"w": torch.zeros(2), "hook": print})
Traceback (most recent call last):
...
modyn_store.core.errors.InvalidArgumentError: invalid state_dict['hook']='builtins.builtin_function_or_method': expected tensors, numbers, strings, bytes, None, torch dtypes/devices/sizes/layouts, and lists, tuples, sets and dicts of them (what torch.load(weights_only=True) reads back)
"""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict, deque
from typing import Any

from modyn_store.core.errors import InvalidArgumentError

__all__ = ["Sha256Writer", "check_state", "unzip_hashed"]

#: bytes read from a checkpoint file at a time
CHUNK = 1 << 22


class Sha256Writer:
    """A binary file that also hashes what is written to it (``sha256``)."""

    def __init__(self, fh: Any) -> None:
        self.fh, self.sha256 = fh, hashlib.sha256()

    def write(self, data: Any) -> int:
        self.sha256.update(data)
        self.fh.write(data)
        return len(memoryview(data))


def unzip_hashed(fh: Any) -> tuple[io.BytesIO, str, Exception | None, bool]:
    """Read the zstd file ``fh`` in chunks: its decompressed bytes (at position 0), the sha256 of
    its stored bytes, the decompression error if any (hashing goes on past it) and whether the
    frame was complete. Only the decompressed bytes are held in memory."""
    import zstandard

    sha, raw, unzipped = hashlib.sha256(), io.BytesIO(), zstandard.ZstdDecompressor().decompressobj()
    bad: Exception | None = None
    while chunk := fh.read(CHUNK):
        sha.update(chunk)
        if bad is None:
            try:
                raw.write(unzipped.decompress(chunk))
            except zstandard.ZstdError as exc:
                bad = exc
    raw.seek(0)
    return raw, sha.hexdigest(), bad, bad is None and unzipped.eof


#: what :func:`check_state` accepts, in words
STATE_VALUES = ("tensors, numbers, strings, bytes, None, torch dtypes/devices/sizes/layouts, and lists, tuples, "
                "sets and dicts of them (what torch.load(weights_only=True) reads back)")
_PLAIN = (type(None), bool, int, float, complex, str, bytes, bytearray)
_CONTAINERS = (list, tuple, set, dict, OrderedDict)


def check_state(state_dict: Any, name: str = "state_dict") -> None:
    """Refuse, naming the entry, a value of ``state_dict`` that ``torch.load(weights_only=True)``
    would refuse when the checkpoint is loaded (a lambda, a numpy array, an object of your own
    class, a tensor subclass, an enum, a ``defaultdict`` or named tuple...).

    Accepted: plain ``torch.Tensor`` and ``nn.Parameter`` objects (any dtype, layout or device),
    ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, ``bytearray``,
    ``torch.Size``, ``torch.dtype``, ``torch.device``, ``torch.layout``, and ``list``, ``tuple``,
    ``set``, ``dict`` and ``OrderedDict`` of these (keys included). Raises
    :class:`~modyn_store.core.errors.InvalidArgumentError` naming the entry, e.g.
    ``state_dict['opt'][0]``.
    """
    import torch

    seen: set[int] = set()
    todo: deque[tuple[str, Any]] = deque([(name, state_dict)])  # breadth first: the first bad entry in order
    while todo:
        where, value = todo.popleft()
        t = type(value)
        if t in _PLAIN or t in (torch.Tensor, torch.nn.Parameter, torch.Size) \
                or isinstance(value, (torch.dtype, torch.device, torch.layout)):
            continue
        if t not in _CONTAINERS:
            raise InvalidArgumentError(where, f"{t.__module__}.{t.__qualname__}", STATE_VALUES)
        if id(value) in seen:  # shared or cyclic: pickled once, by reference
            continue
        seen.add(id(value))
        if isinstance(value, dict):
            for k, v in value.items():
                todo.append((f"{where} key {k!r}", k))
                todo.append((f"{where}[{k!r}]", v))
        else:
            todo.extend((f"{where}[{i}]", v) for i, v in enumerate(value))
