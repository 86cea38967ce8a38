"""Requests the store's own existence checks and small reads send to S3 (a counting moto server).

On object storage every request is a round trip, so each check asks once: a file's existence
is one HEAD (s3fs's ``exists`` follows a missing key with a listing for a folder of that name),
a folder's one listing, a small file one GET (s3fs's ``cat_file`` asks the size first), and a
table that has not moved since this process opened it costs the HEADs of its manifest and of
the next one, no folder check. ``benchmarks/s3_requests.py`` counts whole operations.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core._location import resolve
from modyn_store.core._objects import _one_get, _request_kwargs, folder_has_objects, object_info, read_object
from modyn_store.core.errors import StorageUnavailableError

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
from s3_requests import Counting, start_server  # noqa: E402

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def counted() -> Iterator[tuple[Counting, dict[str, str], Any]]:
    """A counting moto server: ``(counter, storage options, boto3 client)``."""
    import boto3

    endpoint, counter, server = start_server()
    opts = {"aws_endpoint": endpoint, "aws_access_key_id": "testing", "aws_secret_access_key": "testing",
            "aws_region": "us-east-1", "allow_http": "true"}
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    yield counter, opts, client
    server.shutdown()


def _bucket(client: Any) -> str:
    name = f"req-{uuid.uuid4().hex[:20]}"
    client.create_bucket(Bucket=name)
    return name


def _store_requests(counts: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for (sender, kind), n in counts.items():
        if sender == "store":
            out[kind] = out.get(kind, 0) + n
    return out


def test_a_file_check_is_one_head_a_folder_check_one_listing_a_read_one_get(counted: Any) -> None:
    counter, opts, client = counted
    bucket = _bucket(client)
    client.put_object(Bucket=bucket, Key="st/present.json", Body=b"{}")
    client.put_object(Bucket=bucket, Key="st/folder/x", Body=b"x")
    loc = resolve(f"s3://{bucket}/st", opts)
    cases = [
        (lambda: loc.exists("present.json"), True, {"HEAD": 1}),
        (lambda: loc.exists("missing.json"), False, {"HEAD": 1}),
        (lambda: loc.exists("folder", folder=True), True, {"LIST": 1}),
        (lambda: loc.exists("nothing", folder=True), False, {"LIST": 1}),
        (lambda: loc.exists("folder"), False, {"HEAD": 1}),  # a folder is no file
        (lambda: loc.read("present.json"), b"{}", {"GET": 1}),
        (lambda: loc.read("missing.json"), None, {"GET": 1}),
    ]
    for call, expected, requests in cases:
        with counter.counting() as got:
            assert call() == expected
        assert _store_requests(got) == requests


def test_a_folder_of_more_than_one_page_is_searched_to_its_end(counted: Any) -> None:
    counter, opts, client = counted
    bucket = _bucket(client)
    for i in range(1001):  # one listing page holds 1,000 keys; the manifest sorts last
        client.put_object(Bucket=bucket, Key=f"t/_versions/{i:05d}.tmp", Body=b"")
    fs = resolve(f"s3://{bucket}/t", opts).fs
    assert not folder_has_objects(fs, f"{bucket}/t/_versions", ".manifest")
    client.put_object(Bucket=bucket, Key="t/_versions/zz.manifest", Body=b"")
    with counter.counting() as got:
        assert folder_has_objects(fs, f"{bucket}/t/_versions", ".manifest")
    assert _store_requests(got) == {"LIST": 2}
    assert folder_has_objects(fs, f"{bucket}/t/_versions")
    assert not folder_has_objects(fs, f"{bucket}/t/_other")


def test_an_unchanged_table_costs_two_heads_and_a_new_commit_is_seen(counted: Any) -> None:
    counter, opts, client = counted
    uri = f"s3://{_bucket(client)}/store"
    store = Store.open(uri, create=True, storage_options=opts)
    store.append(pa.table({"ts": np.arange(10)}))
    first = store._tables.open("samples")
    assert first is not None
    with counter.counting() as got:
        again = store._tables.open("samples")
    assert again is not None and again.version == first.version
    assert _store_requests(got) == {"HEAD": 2}  # the manifest opened and the next one (absent)
    other = Store.open(uri, storage_options=opts)  # another writer commits a version
    other.append(pa.table({"ts": np.arange(10, 15)}))
    moved = store._tables.open("samples")
    assert moved is not None and moved.version > first.version
    assert store.as_of().count() == 15
    with counter.counting() as got:
        assert store._tables.open("purged") is None
    assert _store_requests(got) == {"LIST": 1}  # a table never written: one folder listing


def test_a_missing_bucket_is_no_folder_and_no_file(counted: Any) -> None:
    """s3fs answers "no such bucket" with ``FileNotFoundError``: a folder or file check of a
    store whose bucket is gone says it is not there (as s3fs's ``exists`` did), not a raw error."""
    _, opts, client = counted
    bucket = _bucket(client)
    loc = resolve(f"s3://{bucket}/st", opts)
    client.delete_bucket(Bucket=bucket)
    assert not loc.exists("_versions", folder=True) and not loc.exists("a.json")
    assert loc.read("a.json") is None and loc.holds("t.lance/_versions", ".manifest") is False


def test_s3fs_releases_without_one_get_reads_and_requester_pays_is_passed(counted: Any) -> None:
    """s3fs before 2026.3 has no ``max_concurrency`` (its ``cat_file`` is one GET anyway), and
    before 2026.9 its ``call_s3`` does not add ``RequestPayer``: both are asked of the release."""
    import s3fs

    class Older(s3fs.S3FileSystem):  # the signature of s3fs 2025.2 - 2026.2
        async def _cat_file(self, path, version_id=None, start=None, end=None):  # type: ignore[no-untyped-def, override]
            return await super()._cat_file(path, version_id=version_id, start=start, end=end)

    _, opts, client = counted
    bucket = _bucket(client)
    client.put_object(Bucket=bucket, Key="a.json", Body=b"{}")
    old = Older(key="testing", secret="testing", client_kwargs={"endpoint_url": opts["aws_endpoint"],
                                                                "region_name": "us-east-1"}, skip_instance_cache=True)
    assert _one_get(old) == {} and read_object(old, f"{bucket}/a.json") == b"{}"
    payer = s3fs.S3FileSystem(requester_pays=True, skip_instance_cache=True)
    assert _request_kwargs(payer)["RequestPayer"] == "requester"
    assert object_info(old, f"{bucket}/a.json") is not None and object_info(old, f"{bucket}/b.json") is None


def test_an_unreachable_endpoint_is_a_typed_error_for_a_table_read_before() -> None:
    """A table opened before is checked by its manifests' HEADs first: an endpoint that stopped
    answering raised botocore's ``EndpointConnectionError`` there, not ``StorageUnavailableError``."""
    import boto3

    endpoint, _, server = start_server()
    opts = {"aws_endpoint": endpoint, "aws_access_key_id": "testing", "aws_secret_access_key": "testing",
            "aws_region": "us-east-1", "allow_http": "true", "connect_timeout": "1s", "client_max_retries": "0"}
    bucket = f"req-{uuid.uuid4().hex[:20]}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket=bucket)
    store = Store.open(f"s3://{bucket}/store", create=True, storage_options=opts)
    store.append(pa.table({"ts": np.arange(3)}))
    assert store._tables.open("samples") is not None
    server.shutdown()
    server.server_close()
    with pytest.raises(StorageUnavailableError, match="cannot reach the store"):
        store._tables.open("samples")
    with pytest.raises(StorageUnavailableError, match="cannot reach the store"):
        store.as_of().count()  # the log's first request: the marker's HEAD
