"""Streamed checkpoint bytes: zstd frames hashed as they are written or read, never held whole.

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
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

__all__ = ["Sha256Writer", "unzip_hashed"]

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
