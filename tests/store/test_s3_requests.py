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
from modyn_store.core._location import folder_has_objects, resolve

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
