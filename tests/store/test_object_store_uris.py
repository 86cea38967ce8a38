"""Object-store URIs and storage options: one meaning for Lance and for the store's own files,
typed errors for what cannot have one, and credentials kept out of reprs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import InvalidArgumentError, Store
from modyn_store.core._location import resolve

OPTS = {"aws_region": "us-east-1", "aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "s3cr3t-value"}


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/a/../b",  # Lance normalizes '..', fsspec keeps it: another store's tables
        "s3://bucket/./store",
        "s3://bucket//store",
        "s3://bucket/a//b",
        "s3://bucket/pc%2Fstore",  # Lance percent-decodes the table URIs, fsspec does not
        "s3://bucket/store?versionId=1",  # Lance drops a query, fsspec keeps it in the key
        "s3://bucket/store#frag",
        "s3://bucket/st\tore",
        "gs://bucket/a/../b",
    ],
)
def test_object_paths_that_resolve_twice_are_refused(uri: str) -> None:
    with pytest.raises(InvalidArgumentError, match="uri"):
        resolve(uri, {"aws_region": "us-east-1"} if uri.startswith("s3") else {})


@pytest.mark.parametrize("uri", ["s3://bucket", "s3://bucket/", "s3://bucket/a/b/", "s3://bucket/with space/x"])
def test_plain_object_paths_still_resolve(uri: str) -> None:
    assert resolve(uri, {"aws_region": "us-east-1"}).scheme == "s3"


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"aws_endpoint": "http://127.0.0.1:9000\x00x"}, "aws_endpoint"),
        ({"aws_session_token": None}, "aws_session_token"),
        ({"timeout": 1.5}, "timeout"),
        ({"aws_region": ["us-east-1"]}, "aws_region"),
        ({"aws\x00_region": "us-east-1"}, "storage_options"),
    ],
)
def test_option_values_that_lance_cannot_take_are_refused(options: dict[str, object], name: str) -> None:
    with pytest.raises(InvalidArgumentError, match=name.replace("\x00", ".")):
        resolve("s3://bucket/store", options)  # type: ignore[arg-type]


def test_a_refused_option_value_is_never_echoed() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        resolve("s3://bucket/store", {**OPTS, "aws_secret_access_key": "s3cr3t\x00value"})
    assert "s3cr3t" not in str(info.value) and "s3cr3t" not in repr(info.value)


def test_integer_and_boolean_options_reach_lance_as_text() -> None:
    loc = resolve("s3://bucket/store", {"client_max_retries": 3, "allow_http": True})
    assert loc.storage_options == {"client_max_retries": "3", "allow_http": "true"}


def test_credentials_stay_out_of_a_location_repr() -> None:
    loc = resolve("s3://bucket/store", OPTS)
    assert "s3cr3t-value" not in repr(loc) and "AKIDEXAMPLE" not in repr(loc)
    assert loc.storage_options["aws_secret_access_key"] == "s3cr3t-value"


@pytest.mark.s3
def test_a_dotted_uri_cannot_write_into_another_store(s3_store: tuple[str, dict[str, str]]) -> None:
    uri, options = s3_store
    bucket = uri.split("://", 1)[1].split("/", 1)[0]
    victim = Store.open(f"s3://{bucket}/victim", create=True, storage_options=options)
    victim.append(pa.table({"ts": np.arange(3)}))
    with pytest.raises(InvalidArgumentError, match="uri"):
        Store.open(f"s3://{bucket}/other/../victim", create=True, storage_options=options)
    again = Store.open(f"s3://{bucket}/victim", storage_options=options)
    assert again.version == 1 and again.as_of().count() == 3
    fs = resolve(uri, options).fs
    assert not fs.exists(f"{bucket}/other/../victim/_modyn_store.json")


def _refused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: connections are refused


@pytest.mark.s3
@pytest.mark.parametrize("spelling", ["aws_endpoint", "aws_endpoint_url", "endpoint_url"])
def test_an_unreachable_endpoint_is_named_in_any_spelling(spelling: str) -> None:
    from modyn_store.core.errors import StorageUnavailableError

    port = _refused_port()
    options = {spelling: f"http://127.0.0.1:{port}", "allow_http": "true", "aws_region": "us-east-1",
               "aws_access_key_id": "k", "aws_secret_access_key": "s", "connect_timeout": "1s", "timeout": "1s",
               "client_max_retries": "0"}
    with pytest.raises(StorageUnavailableError, match=f"at http://127.0.0.1:{port}:"):
        Store.open("s3://bucket/store", storage_options=options)


def test_an_endpoint_with_credentials_in_it_is_refused_without_echoing_them() -> None:
    with pytest.raises(InvalidArgumentError, match="aws_endpoint") as info:
        resolve("s3://bucket/store", {"aws_endpoint": "http://user:pa55word@127.0.0.1:9000"})
    assert "pa55word" not in str(info.value) and "pa55word" not in repr(info.value)


@pytest.mark.parametrize(("options", "name"), [
    ({"aws_endpoint": "http://127.0.0.1:1", "endpoint": "http://127.0.0.1:2"}, "endpoint"),
    ({"endpoint_url": "http://127.0.0.1:1", "aws_endpoint_url": "http://127.0.0.1:2"}, "aws_endpoint_url"),
    ({"AWS_REGION": "eu-west-1", "region": "us-east-1"}, "region"),
    ({"aws_secret_access_key": "s3cr3t-one", "secret_access_key": "s3cr3t-two"}, "secret_access_key"),
])
def test_two_spellings_of_one_setting_must_agree(options: dict[str, str], name: str) -> None:
    """Lance takes one spelling and the store's own files another: with two endpoints the
    tables and the version log would land on different servers, silently."""
    with pytest.raises(InvalidArgumentError, match="give each setting once") as info:
        resolve("s3://bucket/store", options)
    assert info.value.name == f"storage_options[{name!r}]"
    assert "s3cr3t" not in str(info.value)
    # the same value twice is one setting
    same = dict.fromkeys(options, next(iter(options.values())))
    pair = {"aws_access_key_id": "k"} if name == "secret_access_key" else {}  # a secret needs its key
    assert resolve("s3://bucket/store", {**same, **pair, "allow_http": "true"}).root == "s3://bucket/store"


def test_sse_kms_options_reach_the_store_files_too() -> None:
    from modyn_store.core._location import fsspec_options

    got = fsspec_options("s3", {"aws_server_side_encryption": "aws:kms", "aws_sse_kms_key_id": "my-key",
                                "aws_sse_bucket_key_enabled": "true", "aws_default_region": "eu-west-1",
                                "aws_s3_express": "false", "aws_disable_tagging": "true"})
    assert got["s3_additional_kwargs"] == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "my-key",
                                           "BucketKeyEnabled": True}
    assert got["client_kwargs"] == {"region_name": "eu-west-1"}


@pytest.mark.s3
def test_a_missing_bucket_is_named_and_not_created(s3_store: tuple[str, dict[str, str]]) -> None:
    from modyn_store.core.errors import NotAStoreError

    _, options = s3_store
    with pytest.raises(NotAStoreError, match="bucket 'no-such-bucket-zz' does not exist"):
        Store.open("s3://no-such-bucket-zz/store", create=True, storage_options=options)


_CREATE = r"""
import json, sys, time
import numpy as np, pyarrow as pa
from modyn_store import Store
uri, options, start = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
time.sleep(max(0.0, start - time.time()))
Store.open(uri, create=True, storage_options=options).append(pa.table({"ts": np.arange(3)}))
"""


@pytest.mark.s3
@pytest.mark.slow
def test_processes_creating_one_store_at_once_all_get_it(s3_store: tuple[str, dict[str, str]]) -> None:
    """A move on an object store is a copy and a delete: creators racing on one marker must not
    delete each other's file (each got a raw FileNotFoundError in about half the trials)."""
    import json
    import subprocess
    import sys
    import time

    uri, options = s3_store
    for trial in range(4):
        start = time.time() + 3.0
        procs = [subprocess.Popen([sys.executable, "-c", _CREATE, f"{uri}-{trial}", json.dumps(options), str(start)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(e[-2000:] for e in errors)
        assert Store.open(f"{uri}-{trial}", storage_options=options).as_of().count() == 9


@pytest.mark.parametrize("uri", ["s3://bucket/x*", "s3://bucket/run[1]/store", "gs://bucket/a]b", "/tmp/stores/x*",
                                 "/tmp/stores/run[1]"])
def test_store_paths_with_glob_characters_are_refused(uri: str) -> None:
    with pytest.raises(InvalidArgumentError, match="uri"):
        resolve(uri, {"aws_region": "us-east-1"} if uri.startswith("s3") else {})


@pytest.mark.s3
def test_a_glob_store_path_cannot_reach_another_stores_lease(s3_store: tuple[str, dict[str, str]]) -> None:
    """fsspec expands '*' in rm: a store at ``.../store*`` released ``.../store1``'s writer lease
    (and its checkpoint deleted that store's version log)."""
    import boto3

    from modyn_store.core._writable import locked

    uri, options = s3_store
    bucket = uri.split("/")[2]
    client = boto3.client("s3", endpoint_url=options["aws_endpoint"], aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    first = Store.open(f"{uri}1", create=True, storage_options=options)
    first.append(pa.table({"ts": np.arange(3)}))
    with locked(first):
        with pytest.raises(InvalidArgumentError, match="uri"):
            Store.open(f"{uri}*", create=True, storage_options=options).append(pa.table({"ts": [5]}))
        held = client.list_objects_v2(Bucket=bucket, Prefix="store1/_lock.json").get("KeyCount", 0)
        assert held == 1


def test_an_http_endpoint_without_allow_http_is_refused_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lance refuses plain HTTP without allow_http: the store's marker was written through fsspec and
    every append then failed with a bare OSError ("builder error")."""
    monkeypatch.delenv("AWS_ALLOW_HTTP", raising=False)
    opts = {"aws_endpoint": "http://127.0.0.1:9000", "aws_region": "us-east-1"}
    for allow in ({}, {"allow_http": "false"}):
        with pytest.raises(InvalidArgumentError, match="allow_http"):
            resolve("s3://bucket/store", {**opts, **allow})
    assert resolve("s3://bucket/store", {**opts, "allow_http": "true"}).scheme == "s3"
    assert resolve("s3://bucket/store", {**opts, "aws_endpoint": "https://127.0.0.1:9000"}).scheme == "s3"
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")  # Lance reads it too
    assert resolve("s3://bucket/store", opts).scheme == "s3"


@pytest.mark.s3
def test_an_http_endpoint_without_allow_http_leaves_no_store_behind(s3_store: tuple[str, dict[str, str]],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    monkeypatch.delenv("AWS_ALLOW_HTTP", raising=False)
    uri, options = s3_store
    options = {k: v for k, v in options.items() if k != "allow_http"}
    with pytest.raises(InvalidArgumentError, match="allow_http"):
        Store.open(uri, create=True, storage_options=options).append(pa.table({"ts": [1, 2]}))
    client = boto3.client("s3", endpoint_url=options["aws_endpoint"], aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    assert client.list_objects_v2(Bucket=uri.split("/")[2]).get("KeyCount", 0) == 0
