"""Shared fixtures: the real data folder and store backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _read_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Reads keep their derived arrays in a folder of the test session, not the user's cache
    (child processes the tests start inherit it)."""
    import os

    from modyn_store.core._kept import ENV

    folder = tmp_path_factory.mktemp("read-cache")
    before = os.environ.get(ENV)
    os.environ[ENV] = str(folder)
    yield folder
    if before is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = before


def forget_aws_credentials(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """From here on this test's process knows no AWS endpoint or credentials: no environment
    variables, no shared files (names under ``folder`` that do not exist), no instance metadata."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(folder / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def data_dir() -> Path:
    """The folder of real time-ordered datasets (skips when it is not there)."""
    if not DATA.is_dir():
        pytest.skip(f"real datasets not found at {DATA}")
    return DATA


@pytest.fixture(params=["local", "memory"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store location on every backend that runs without a server."""
    if request.param == "local":
        return str(tmp_path / "store")
    return f"memory://{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A local S3 endpoint (moto's server in a thread), started once per test session."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_store(s3_endpoint: str) -> tuple[str, dict[str, str]]:
    """``(uri, storage_options)`` of a fresh store location in its own bucket on the local endpoint."""
    import boto3

    options = {
        "aws_endpoint": s3_endpoint,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_region": "us-east-1",
        "allow_http": "true",
    }
    bucket = f"modyn-{uuid.uuid4().hex[:20]}"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/store", options


@pytest.fixture()
def plotted_figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The matplotlib figures the report's plots draw, kept (not rendered to PNG) to look into."""
    import modyn_store.app.report.plots as plots

    figs: list[Any] = []

    def keep(fig: Any) -> bytes:
        figs.append(fig)
        return b""

    monkeypatch.setattr(plots, "_png", keep)
    return figs
