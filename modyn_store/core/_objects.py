"""Single requests to an object store: a file's metadata, whether a folder holds a file, a
small file's bytes.

On S3, s3fs's ``exists`` and ``info`` follow a HEAD that finds no object with a listing that
looks for a folder of that name, ``ls`` of a folder that holds nothing lists its parent, and
``cat_file`` (since s3fs 2026.3) asks an object's size before its GET: each a second round trip.
The store's checks need none of them (a manifest, a record or a marker is a file, a table's
``_versions`` a folder), so these functions send one request each (a listing of a large folder
goes on page by page). Other file systems answer through fsspec's own calls.

Example
-------
>>> import fsspec
>>> fs = fsspec.filesystem("memory")
>>> fs.pipe_file("/objects-doc/a.json", b"{}")
>>> object_info(fs, "/objects-doc/a.json")["size"], object_info(fs, "/objects-doc/b.json")
(2, None)
>>> read_object(fs, "/objects-doc/a.json"), read_object(fs, "/objects-doc/b.json")
(b'{}', None)
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["folder_has_objects", "object_info", "read_object"]


def _is_s3(fs: Any) -> bool:
    return callable(getattr(fs, "call_s3", None)) and callable(getattr(fs, "split_path", None))


def _request_kwargs(fs: Any) -> dict[str, Any]:
    """What s3fs adds to each of its own requests (``RequestPayer`` for a requester-pays bucket:
    releases before 2026.9 add it in each call, not in ``call_s3``)."""
    return {**(getattr(fs, "kwargs", None) or {}), **(getattr(fs, "req_kw", None) or {})}


def object_info(fs: Any, path: str) -> dict[str, Any] | None:
    """The metadata of the object (file) ``path``, ``None`` if there is none (nor its bucket);
    on S3 one HEAD request."""
    if not _is_s3(fs):
        try:
            info = fs.info(path)
        except FileNotFoundError:
            return None
        return None if info.get("type") == "directory" else dict(info)
    bucket, key, _ = fs.split_path(path)
    try:
        out = fs.call_s3("head_object", _request_kwargs(fs), Bucket=bucket, Key=key)
    except FileNotFoundError:
        return None
    return {"ETag": out.get("ETag", ""), "LastModified": out.get("LastModified", ""),
            "size": out.get("ContentLength"), "type": "file"}


def folder_has_objects(fs: Any, path: str, suffix: str = "") -> bool:
    """Whether the folder ``path`` of an S3 file system holds an entry (``suffix``: an object
    whose name ends with it); ``False`` when neither it nor its bucket exists. One listing when
    ``suffix`` is empty, else listings of its direct entries until one is found."""
    bucket, key, _ = fs.split_path(path)
    args: dict[str, Any] = {"Bucket": bucket, "Prefix": key.rstrip("/") + "/", "Delimiter": "/"}
    if not suffix:
        args["MaxKeys"] = 1
    while True:
        try:
            out = fs.call_s3("list_objects_v2", _request_kwargs(fs), **args)
        except FileNotFoundError:  # no such bucket: no such folder, as s3fs's exists answers
            return False
        names = [str(o.get("Key", "")) for o in out.get("Contents", []) or []]
        if not suffix and (names or out.get("CommonPrefixes")):
            return True
        if suffix and any(n.endswith(suffix) for n in names):
            return True
        token = out.get("NextContinuationToken")
        if not suffix or not out.get("IsTruncated") or not token:
            return False
        args["ContinuationToken"] = token


def _one_get(fs: Any) -> dict[str, Any]:
    """``cat_file`` keyword arguments that make s3fs read with one GET (no size request)."""
    try:
        takes = "max_concurrency" in inspect.signature(type(fs)._cat_file).parameters
    except (AttributeError, TypeError, ValueError):
        takes = False
    return {"max_concurrency": 1} if takes else {}


def read_object(fs: Any, path: str) -> bytes | None:
    """The bytes of the small object ``path``, ``None`` if it does not exist; on S3 one GET."""
    try:
        return bytes(fs.cat_file(path, **(_one_get(fs) if _is_s3(fs) else {})))
    except FileNotFoundError:
        return None
