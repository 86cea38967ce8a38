"""Where a store lives: local folders, ``memory://`` stores and object-store URIs.

Lance tables are addressed by URI (Lance's own object store handles ``s3://`` and friends);
every other file goes through fsspec. One ``storage_options`` dict, in Lance's spelling
(``aws_endpoint``, ``aws_access_key_id``, ``allow_http``, ``region`` ...), serves both: it goes
to Lance as given and is translated here into the keyword arguments of fsspec's ``s3fs``.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import fsspec

from modyn_store.core._objects import folder_has_objects, object_info, read_object
from modyn_store.core.errors import InvalidArgumentError, StorageAccessError, StorageUnavailableError

__all__ = ["Location", "fsspec_options", "resolve"]

_OBJECT_SCHEMES = ("s3", "gs", "az", "abfs", "oss")
_MEMORY_ROOTS: dict[str, str] = {}
_MEMORY_LOCK = threading.Lock()

# Lance (object_store) spellings of S3 options -> the s3fs setting they translate to.
_S3_KEYS: dict[str, str] = {
    "aws_access_key_id": "key",
    "access_key_id": "key",
    "aws_secret_access_key": "secret",
    "secret_access_key": "secret",
    "aws_session_token": "token",
    "session_token": "token",
    "aws_token": "token",
    "token": "token",
    "aws_region": "region",
    "aws_default_region": "region",
    "region": "region",
    "aws_endpoint": "endpoint",
    "aws_endpoint_url": "endpoint",
    "endpoint": "endpoint",
    "endpoint_url": "endpoint",
    "aws_skip_signature": "anon",
    "skip_signature": "anon",
    "aws_virtual_hosted_style_request": "virtual_hosted",
    "virtual_hosted_style_request": "virtual_hosted",
    "aws_request_payer": "requester_pays",
    "request_payer": "requester_pays",
    "aws_server_side_encryption": "sse",
    "aws_sse_kms_key_id": "sse_kms_key",
    "aws_sse_bucket_key_enabled": "sse_bucket_key",
    "connect_timeout": "connect_timeout",
    "timeout": "read_timeout",
    "client_max_retries": "retries",
}
# Options only Lance's object store reads; the metadata files need no counterpart.
_LANCE_ONLY = frozenset(
    {
        "allow_http",
        "allow_invalid_certificates",
        "aws_conditional_put",
        "conditional_put",
        "aws_imdsv1_fallback",
        "imdsv1_fallback",
        "aws_unsigned_payload",
        "unsigned_payload",
        "aws_checksum_algorithm",
        "checksum_algorithm",
        "aws_metadata_endpoint",
        "aws_container_credentials_relative_uri",
        "client_retry_timeout",
        "download_retry_count",
        "proxy_url",
        "proxy_ca_certificate",
        "proxy_excludes",
        "pool_idle_timeout",
        "pool_max_idle_per_host",
        "http2_only",
        "user_agent",
        "new_table_enable_stable_row_ids",
        "new_table_enable_v2_manifest_paths",
        "aws_s3_express",
        "aws_disable_tagging",
    }
)
#: settings whose value is a credential: never shown in an error
_SECRET_TARGETS = frozenset({"key", "secret", "token", "sse_kms_key"})
# an AWS region is a host label (botocore's rule, which s3fs applies when it makes its client)
_REGION = re.compile(r"(?![0-9]+$)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)")
_CREDENTIALS_HINT = ("aws_access_key_id and aws_secret_access_key (or AWS credentials in the environment, "
                     "a profile or an instance role), or aws_skip_signature='true' for a public bucket")


def _memory_root(name: str) -> str:
    """A process-local folder that backs ``memory://name`` (removed at interpreter exit)."""
    with _MEMORY_LOCK:
        root = _MEMORY_ROOTS.get(name)
        if root is None:
            root = tempfile.mkdtemp(prefix="modyn-store-memory-")
            _MEMORY_ROOTS[name] = root
        return root


@atexit.register
def _remove_memory_roots() -> None:
    for root in _MEMORY_ROOTS.values():
        shutil.rmtree(root, ignore_errors=True)


def _seconds(name: str, value: Any) -> float:
    """Seconds from a Lance duration (``"5s"``, ``"500ms"``, ``"2m"``) or a number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*", str(value))
    if not m or float(m.group(1)) <= 0:
        raise InvalidArgumentError(f"storage_options[{name!r}]", value, "a positive duration such as '5s' or '500ms'")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2) or "s"]
    return float(m.group(1)) * scale


def _truthy(name: str, value: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise InvalidArgumentError(f"storage_options[{name!r}]", value, "'true' or 'false'")


def fsspec_options(scheme: str, storage_options: dict[str, Any]) -> dict[str, Any]:
    """Translate Lance-style ``storage_options`` into fsspec keyword arguments for ``scheme``.

    For ``s3`` every key Lance understands is accepted; those that matter to the metadata
    files (credentials, region, endpoint, timeouts, retries, addressing) are mapped onto
    ``s3fs.S3FileSystem``'s arguments. An unknown key raises
    :class:`~modyn_store.core.errors.InvalidArgumentError` (a misspelt endpoint must not send a
    store to the public cloud). Other schemes get the options unchanged.

    Example
    -------
    >>> opts = fsspec_options("s3", {"aws_endpoint": "http://127.0.0.1:9000", "aws_region": "eu-west-1",
    ...                              "aws_access_key_id": "k", "aws_secret_access_key": "s", "allow_http": "true"})
    >>> opts["endpoint_url"], opts["client_kwargs"], opts["key"]
    ('http://127.0.0.1:9000', {'region_name': 'eu-west-1'}, 'k')
    """
    if scheme != "s3":
        return dict(storage_options)
    out: dict[str, Any] = {}
    client: dict[str, Any] = {}
    config: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    given: dict[str, tuple[str, Any]] = {}  # setting -> the first key that set it, and its value
    for raw_key, value in storage_options.items():
        if not isinstance(raw_key, str):
            raise InvalidArgumentError("storage_options", raw_key, "string keys")
        k = raw_key.lower()
        if k in _LANCE_ONLY:
            continue
        target = _S3_KEYS.get(k)
        if target is None:
            valid = sorted(set(_S3_KEYS) | _LANCE_ONLY)
            raise InvalidArgumentError(
                "storage_options", raw_key, f"a Lance S3 option, one of: {', '.join(valid)}"
            )
        if target in given and str(given[target][1]) != str(value):
            # Lance picks one spelling and the metadata files another: the store would be split
            # between two endpoints (regions, credentials)
            shown = "a different value" if target in _SECRET_TARGETS else str(value)
            raise InvalidArgumentError(
                f"storage_options[{raw_key!r}]", shown,
                f"the same value as storage_options[{given[target][0]!r}], which sets the {target} too "
                "(give each setting once)")
        given.setdefault(target, (raw_key, value))
        if target in ("key", "secret", "token"):
            out[target] = str(value)
        elif target == "region":
            if not _REGION.fullmatch(str(value)):
                raise InvalidArgumentError(
                    f"storage_options[{raw_key!r}]", value, "an AWS region name such as 'us-east-1' "
                    "(letters, digits and '-', not only digits)")
            client["region_name"] = str(value)
        elif target == "endpoint":
            if "@" in str(value).split("://", 1)[-1].split("/", 1)[0]:
                # never echoed: the user:password part is a credential
                raise InvalidArgumentError(
                    f"storage_options[{raw_key!r}]", "a URL with user:password@",
                    "an endpoint URL without credentials (give them as aws_access_key_id and "
                    "aws_secret_access_key)")
            out["endpoint_url"] = str(value)
        elif target == "anon":
            out["anon"] = _truthy(raw_key, value)
        elif target == "virtual_hosted":
            config.setdefault("s3", {})["addressing_style"] = "virtual" if _truthy(raw_key, value) else "path"
        elif target == "requester_pays":
            out["requester_pays"] = _truthy(raw_key, value)
        elif target == "sse":
            extra["ServerSideEncryption"] = str(value)
        elif target == "sse_kms_key":
            extra["SSEKMSKeyId"] = str(value)
        elif target == "sse_bucket_key":
            extra["BucketKeyEnabled"] = _truthy(raw_key, value)
        elif target in ("connect_timeout", "read_timeout"):
            config[target] = _seconds(raw_key, value)
        elif target == "retries":
            try:
                n = int(value)
            except (TypeError, ValueError):
                n = -1
            if n < 0:
                raise InvalidArgumentError(f"storage_options[{raw_key!r}]", value, "an integer >= 0")
            # botocore's own retries, on top of which s3fs retries transient errors once more
            config["retries"] = {"max_attempts": n + 1, "mode": "standard"}
            out["retries"] = 1
    if ("key" in given) != ("secret" in given):
        have, need = ("key", "secret") if "key" in given else ("secret", "key")
        raise InvalidArgumentError(
            f"storage_options[{given[have][0]!r}]", "a credential without its pair",
            f"it together with {'aws_secret_access_key' if need == 'secret' else 'aws_access_key_id'} "
            "(an access key is used with its secret)")
    if client:
        out["client_kwargs"] = client
    if config:
        out["config_kwargs"] = config
    if extra:
        out["s3_additional_kwargs"] = extra
    return out


def _unreachable_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the endpoint did not answer" (not "access denied")."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

        found += [BotoConnectionError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError]
    except ImportError:
        pass
    try:
        import aiohttp

        found.append(aiohttp.ClientConnectionError)
    except ImportError:
        pass
    return tuple(found)


def _credential_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "no credentials to sign the request with"."""
    try:
        from botocore.exceptions import NoCredentialsError, PartialCredentialsError
    except ImportError:
        return ()
    return (NoCredentialsError, PartialCredentialsError)


def _no_credentials(uri: str, exc: BaseException) -> InvalidArgumentError:
    """The typed error for a request botocore could not sign (no or half credentials)."""
    return InvalidArgumentError(
        "storage_options", f"no usable AWS credentials: {uri} cannot be read ({type(exc).__name__})",
        _CREDENTIALS_HINT)


def _access_denied(uri: str, storage_options: dict[str, Any], exc: BaseException) -> StorageAccessError:
    """The typed error for a request the object store refused (HTTP 403): the credentials were
    not accepted or grant no access to the store (no credential is shown)."""
    return StorageAccessError(
        f"the object store at {_endpoint_of(storage_options)} refused access to the store {uri!r} ({exc}): "
        "the credentials (storage_options, the environment, a profile or an instance role) were not "
        "accepted or grant no access to this bucket and prefix")


def _endpoint_of(storage_options: dict[str, Any]) -> str:
    """The endpoint the options name (any of Lance's spellings), without credentials in it."""
    for key, value in storage_options.items():
        if isinstance(key, str) and _S3_KEYS.get(key.lower()) == "endpoint":
            return str(value)
    return "the default endpoint"


@dataclass(frozen=True)
class Location:
    """A resolved store location.

    ``root`` is what Lance receives (a local absolute path or an object-store URI) together
    with ``storage_options``; ``fs`` addresses auxiliary files through fsspec with the same
    options, translated.
    """

    uri: str
    root: str
    is_local: bool
    # credentials live here: never in a repr, a log line or a traceback's locals
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def scheme(self) -> str:
        """``""`` for local folders and ``memory://`` stores, else the object store's scheme."""
        return "" if self.is_local else self.root.split("://", 1)[0]

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self.is_local:
            return fsspec.filesystem("file")
        opts = fsspec_options(self.scheme, self.storage_options)
        # other processes write here: never answer from a stale listing
        opts.setdefault("use_listings_cache", False)
        retries = opts.pop("retries", None)
        try:
            fs, _ = fsspec.core.url_to_fs(self.root, **opts)
        except ImportError as exc:
            extra = "s3" if self.scheme == "s3" else self.scheme
            raise ImportError(
                f"a store on {self.scheme}:// needs fsspec's {self.scheme} backend: "
                f"pip install 'modyn-store[{extra}]' ({exc})"
            ) from exc
        if retries is not None:
            fs.retries = retries
        return fs

    @contextmanager
    def typed_errors(self) -> Iterator[None]:
        """Typed errors for an object store's requests: missing or half credentials
        (``InvalidArgumentError``), refused ones (:class:`StorageAccessError`), an endpoint that
        does not answer (:class:`StorageUnavailableError`, within the configured
        ``connect_timeout``/``timeout``/``client_max_retries``)."""
        try:
            yield
        except _credential_errors() as exc:
            raise _no_credentials(self.uri, exc) from exc
        except PermissionError as exc:
            if self.is_local or isinstance(exc, StorageAccessError):
                raise
            raise _access_denied(self.uri, self.storage_options, exc) from exc
        except _unreachable_errors() as exc:
            if isinstance(exc, StorageUnavailableError):
                raise
            endpoint = _endpoint_of(self.storage_options)
            raise StorageUnavailableError(
                f"cannot reach the store {self.uri!r} at {endpoint}: {type(exc).__name__}: {exc}"
            ) from exc

    def exists(self, relative: str, *, folder: bool = False) -> bool:
        """Whether the file ``relative`` (``folder=True``: the folder) exists in the store (typed
        errors: see :meth:`typed_errors`). On S3 one request: a HEAD for a file, a one-key listing
        for a folder."""
        path = self.path(relative)
        if self.is_local:
            return os.path.exists(path)
        with self.typed_errors():
            if self.scheme == "s3":
                return folder_has_objects(self.fs, path) if folder else object_info(self.fs, path) is not None
            return bool(self.fs.exists(path))

    def info(self, path: str) -> dict[str, Any] | None:
        """The metadata of the object (file) at the fsspec path ``path`` of an object store,
        ``None`` if there is none (one HEAD on S3; typed errors: see :meth:`typed_errors`)."""
        with self.typed_errors():
            return object_info(self.fs, path)

    def holds(self, relative: str, suffix: str) -> bool | None:
        """On S3, whether the folder ``relative`` holds an object named ``...suffix`` (listings,
        typed errors); ``None`` elsewhere (list the folder through ``fs``)."""
        if self.scheme != "s3":
            return None
        with self.typed_errors():
            return folder_has_objects(self.fs, self.path(relative), suffix)

    def read(self, relative: str) -> bytes | None:
        """The bytes of the small file ``relative`` (``None`` if it does not exist): a plain
        read on a local disk, one GET on an object store."""
        path = self.path(relative)
        if self.is_local:
            try:
                with open(path, "rb") as fh:
                    return fh.read()
            except FileNotFoundError:
                return None
        with self.typed_errors():
            return read_object(self.fs, path)

    def table_uri(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}.lance"

    def path(self, relative: str) -> str:
        """The fsspec path of ``relative`` inside the store."""
        if self.is_local:
            return os.path.join(self.root, relative)
        return f"{self.root.rstrip('/')}/{relative}"


# characters an object-store path cannot carry the same way to Lance (a URL: percent-decoded, a
# query and fragment dropped) and to fsspec (a literal key)
_URL_SPECIAL = re.compile(r"[%?#\x00-\x1f\x7f]")
# fsspec's glob characters: its rm, mv and copy expand them, so a store at ``.../x*`` would
# remove the files (lease, log records, tables) of every store matching ``.../x?``
_GLOB = re.compile(r"[*?\[\]]")


def _check_object_path(text: str, scheme: str) -> None:
    """Refuse an object-store URI that Lance and fsspec would resolve to different keys."""
    rest = text.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise InvalidArgumentError("uri", text, f"{scheme}://BUCKET/PREFIX")
    bad = _URL_SPECIAL.search(rest)
    if bad is not None:
        raise InvalidArgumentError(
            "uri", text, f"{scheme}://BUCKET/PREFIX without {bad.group()!r} ('%', '?', '#' and control "
            "characters would address other objects for the tables than for the store's own files)")
    _check_glob(rest, text, f"{scheme}://BUCKET/PREFIX")
    segments = prefix.rstrip("/").split("/") if prefix.rstrip("/") else []
    if any(seg in ("", ".", "..") for seg in segments):
        raise InvalidArgumentError(
            "uri", text, f"{scheme}://BUCKET/PREFIX whose path has no empty, '.' or '..' segments")


def _check_glob(path: str, text: str, expected: str) -> None:
    """Refuse a store path with fsspec glob characters (its file operations would expand them)."""
    bad = _GLOB.search(path)
    if bad is not None:
        raise InvalidArgumentError(
            "uri", text, f"{expected} without {bad.group()!r} ('*', '?', '[' and ']' are glob patterns to "
            "the store's file operations, which would reach other stores' files)")


def _check_http(opts: dict[str, Any]) -> None:
    """Refuse an ``http://`` endpoint that Lance would refuse: without ``allow_http`` (or
    ``AWS_ALLOW_HTTP``) the store's own files went there and every table write failed with a
    bare ``OSError`` ("builder error")."""
    endpoint = _endpoint_of(opts)
    if not endpoint.strip().lower().startswith("http://"):
        return
    given = [v for k, v in opts.items() if k.lower() == "allow_http"]
    allowed = given[-1] if given else os.environ.get("AWS_ALLOW_HTTP", "false")
    if str(allowed).strip().lower() not in ("true", "1", "yes", "on", "y"):  # object_store's truthy
        raise InvalidArgumentError(
            "storage_options['allow_http']", allowed, f"'true' for the http:// endpoint {endpoint} "
            "(Lance refuses plain HTTP without it)")


def _check_options(opts: dict[str, Any]) -> dict[str, Any]:
    """Options as Lance takes them: string keys and string values (integers and booleans are
    written as Lance spells them), without NUL characters."""
    out: dict[str, Any] = {}
    for key, value in opts.items():
        if not isinstance(key, str) or not key or "\x00" in key:
            raise InvalidArgumentError("storage_options", key, "non-empty string keys without NUL characters")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int):
            value = str(value)
        if not isinstance(value, str) or "\x00" in value:
            shown = "a string with a NUL character" if isinstance(value, str) else type(value).__name__
            # the value itself is never echoed: it may be a credential
            raise InvalidArgumentError(
                f"storage_options[{key!r}]", shown, "a string without NUL characters, e.g. '5s', 'true', '3'")
        out[key] = value
    return out


def resolve(uri: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> Location:
    """Resolve a user-given store URI.

    Example
    -------
    >>> resolve("memory://demo").is_local
    True
    >>> resolve("s3://bucket/store", {"aws_region": "us-east-1"}).scheme
    's3'
    """
    if not isinstance(uri, (str, os.PathLike)):
        raise InvalidArgumentError("uri", uri, "a path or a URI string")
    text = os.fspath(uri)
    if not text or "\x00" in text:
        raise InvalidArgumentError("uri", text, "a non-empty path or URI without NUL characters")
    if storage_options is not None and not isinstance(storage_options, dict):
        raise InvalidArgumentError("storage_options", storage_options, "a dict of Lance storage options")
    opts = _check_options(dict(storage_options or {}))
    if text.startswith("memory://"):
        name = text[len("memory://") :].strip("/") or "default"
        return Location(text, _memory_root(name), True, opts)
    if text.startswith("file://"):
        text = text[len("file://") :]
    scheme = text.split("://", 1)[0] if "://" in text else ""
    if scheme and scheme not in _OBJECT_SCHEMES:
        raise InvalidArgumentError(
            "uri", text, f"a local path, memory://NAME or one of {', '.join(s + '://' for s in _OBJECT_SCHEMES)}"
        )
    if scheme:
        _check_object_path(text, scheme)
        fsspec_options(scheme, opts)  # unknown or malformed keys fail here, before any I/O
        if scheme == "s3":
            _check_http(opts)
        return Location(text, text.rstrip("/"), False, opts)
    root = os.path.abspath(os.path.expanduser(text))
    _check_glob(root, text, "a local path")
    return Location(text, root, True, opts)
