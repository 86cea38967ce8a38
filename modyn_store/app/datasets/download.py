"""Download a file with checksum verification: :func:`fetch`.

The file is streamed (standard library ``urllib``) into a temporary file next to the
destination while its SHA-256 is computed; only when the digest matches (and the body is as
long as the server's ``Content-Length``) is it renamed into place (``os.replace``, atomic on one
file system). A failed, interrupted or cut-short download leaves no file at the destination.

Example
-------
>>> from modyn_store.app.datasets.download import default_cache_dir, safe_filename
>>> safe_filename("day_0.gz")
'day_0.gz'
>>> default_cache_dir().name
'datasets'
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from modyn_store.core.errors import InvalidArgumentError, InvalidNameError, ModynStoreError

__all__ = [
    "ChecksumMismatchError",
    "DownloadError",
    "default_cache_dir",
    "fetch",
    "safe_filename",
    "sha256_file",
]

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ChecksumMismatchError(ModynStoreError):
    """A downloaded or cached file does not have the expected SHA-256 digest."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        self.path, self.expected, self.actual = path, expected, actual
        super().__init__(f"sha256 of {path} is {actual}, expected {expected}")

    def __reduce__(self) -> tuple[Any, ...]:  # crosses processes (multiprocessing, Ray, DDP) intact
        return (type(self), (self.path, self.expected, self.actual), self.__dict__)


class DownloadError(ModynStoreError):
    """The server could not be reached or answered with an error."""


def default_cache_dir() -> Path:
    """``$MODYN_STORE_DATA`` if set, else ``~/.cache/modyn_store/datasets``."""
    env = os.environ.get("MODYN_STORE_DATA")
    return Path(env) if env else Path.home() / ".cache" / "modyn_store" / "datasets"


def safe_filename(name: str) -> str:
    """Return ``name`` if it is a plain file name (no separators, no leading dot), else raise."""
    if not isinstance(name, str) or not _SAFE.fullmatch(name) or ".." in name:
        raise InvalidNameError("filename", name, "a plain file name of letters, digits, '.', '_', '-'")
    return name


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def _content_length(response: Any) -> int | None:
    """The body size the server announced (``None`` when it did not; urllib never decodes the body)."""
    text = response.headers.get("Content-Length")
    try:
        return int(text) if text is not None and int(text) >= 0 else None
    except ValueError:
        return None


def _check_sha(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    if not isinstance(sha256, str) or not _HEX64.fullmatch(sha256.lower()):
        raise InvalidArgumentError("sha256", sha256, "64 hexadecimal digits or None")
    return sha256.lower()


def _stamp(path: Path, url: str) -> str:
    """What names a downloaded file: its URL, size and modification time."""
    st = path.stat()
    return json.dumps({"url": url, "size": st.st_size, "mtime_ns": st.st_mtime_ns}, sort_keys=True)


def _note_origin(origin: Path, dest: Path, url: str) -> None:
    """Record that ``dest`` (as it is now) was downloaded from ``url``. The record is written to
    a new file of a random name (``mkstemp``), never through a name another user of a shared data
    folder could have placed a link at, then renamed over ``origin``."""
    fd, tmp_name = tempfile.mkstemp(prefix=f"{origin.name}.", suffix=".tmp", dir=origin.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_stamp(dest, url))
        os.replace(tmp_name, origin)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _same_origin(origin: Path, dest: Path, url: str) -> bool:
    """Whether the cached ``dest`` (no checksum to verify it by) may serve ``url``: it was
    downloaded from ``url`` and is unchanged since (a file another URL of the same name left,
    or one replaced later, is downloaded again). A file without a record (placed by hand, or
    cached by an earlier release) is trusted, as before."""
    if not origin.is_file():
        return True
    try:
        return origin.read_text() == _stamp(dest, url)
    except OSError:
        return False


def fetch(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    timeout: float = 60.0,
    chunk_bytes: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``dest`` unless a verified copy is already there.

    Parameters
    ----------
    url:
        An ``http://`` or ``https://`` URL.
    dest:
        The destination file; its folder is created.
    sha256:
        Expected hex SHA-256. When given, a cached file is verified (a mismatching one is
        downloaded again) and a download is verified before it is renamed into place. When
        ``None``, a download is accepted as is, and an existing file is used if this function
        downloaded it from the same ``url`` and it has not changed since (its URL, size and
        modification time are kept in ``.<name>.source`` beside it; a file of the same name
        from another URL is downloaded again); a file without that record (placed by hand) is
        trusted.
    timeout:
        Socket timeout in seconds.
    chunk_bytes:
        Read size while streaming.

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    ChecksumMismatchError
        The downloaded file's digest differs from ``sha256`` (nothing is left at ``dest``).
    DownloadError
        The server is unreachable or answered with an HTTP error.
    InvalidArgumentError
        ``url`` is not http(s) or ``sha256`` is malformed.

    Examples
    --------
    >>> fetch("ftp://example.org/x", "/tmp/x")
    Traceback (most recent call last):
    ...
    modyn_store.core.errors.InvalidArgumentError: invalid url='ftp://example.org/x': expected an http:// or https:// URL
    """
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidArgumentError("url", url, "an http:// or https:// URL")
    expected = _check_sha(sha256)
    dest = Path(dest)
    origin = dest.with_name(f".{dest.name}.source")
    if dest.is_file() and (sha256_file(dest) == expected if expected is not None else _same_origin(origin, dest, url)):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked)
                    announced = _content_length(response)
                    while block := response.read(chunk_bytes):
                        digest.update(block)
                        out.write(block)
                        received += len(block)
            except urllib.error.URLError as exc:  # includes HTTPError
                raise DownloadError(f"download of {url} failed: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:  # reset, timeout, broken chunked body
                raise DownloadError(f"download of {url} failed after {received} "
                                    f"bytes: {type(exc).__name__}: {exc}") from exc
            if announced is not None and received != announced:
                raise DownloadError(f"download of {url} ended after {received} of {announced} bytes; "
                                    "nothing was kept, try again")
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if expected is not None and actual != expected:
            raise ChecksumMismatchError(url, expected, actual)
        origin.unlink(missing_ok=True)
        os.replace(tmp, dest)
        _note_origin(origin, dest, url)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
