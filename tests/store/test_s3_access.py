"""Credentials the object store refuses (moto's server with its IAM checks on, in a process of
its own): a typed error naming the store's URI, never a bare ``PermissionError``, and nothing
written."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from modyn_store import Store
from modyn_store.core.errors import StorageAccessError

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def checked_endpoint() -> Iterator[tuple[str, dict[str, str]]]:
    """``(endpoint, options)``: a moto server that checks every request's signature against its
    IAM users, and the options of one user allowed everything."""
    import boto3

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    # the first requests (making the user and its key) go unchecked; every later one is checked
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        iam = boto3.client("iam", endpoint_url=endpoint, aws_access_key_id="testing",
                           aws_secret_access_key="testing", region_name="us-east-1")
        iam.create_user(UserName="writer")
        iam.put_user_policy(UserName="writer", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="writer")["AccessKey"]
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key["AccessKeyId"],
                     aws_secret_access_key=key["SecretAccessKey"], region_name="us-east-1").create_bucket(Bucket="bkt")
        yield endpoint, {
            "aws_endpoint": endpoint,
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
            "aws_region": "us-east-1",
            "allow_http": "true",
        }
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("wrong", ["aws_secret_access_key", "aws_access_key_id"])
def test_refused_credentials_are_a_typed_error_naming_the_store(
    checked_endpoint: tuple[str, dict[str, str]], wrong: str
) -> None:
    from modyn_store.core._location import resolve

    endpoint, options = checked_endpoint
    kept, new = f"s3://bkt/{wrong}/kept", f"s3://bkt/{wrong}/new"
    Store.open(kept, create=True, storage_options=options).append({"ts": [1, 2]})
    bad = {**options, wrong: "AKIAWRONGWRONGWRONG0" if wrong == "aws_access_key_id" else "not-the-secret"}
    for uri, create in ((new, True), (kept, False), (kept, True)):
        with pytest.raises(StorageAccessError) as info:
            Store.open(uri, create=create, storage_options=bad)
        assert isinstance(info.value, PermissionError)
        assert uri in str(info.value) and endpoint in str(info.value)
        assert bad[wrong] not in str(info.value) and options["aws_secret_access_key"] not in str(info.value)
    fs = resolve("s3://bkt", options).fs
    assert fs.find(f"bkt/{wrong}/new") == [], "nothing is written with refused credentials"
    assert Store.open(kept, storage_options=options).as_of().count() == 2
