"""``ray.address`` (and ``run --ray``) is checked for a form ``ray.init`` takes while the
definition is parsed, not when Ray connects (docs/scale-out.md, "Pipelines"; ``RayConfig``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pipeline_helpers import tiny

from modyn_store.app.cli.main import main
from modyn_store.app.pipeline import parse_pipeline
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.ray_exec import connect
from modyn_store.core.errors import InvalidArgumentError

GOOD = ["auto", "local", "ray://head:10001", "ray://10.0.0.7:10001", "10.0.0.7:6379", "localhost:6379",
        "[::1]:6379", "ray://[fe80::1]:10001"]
BAD = ["head", "ray://head", "head:abc", "head:", ":6379", "head:70000", "head:0", "http://head:8265",
       "https://head:8265", "anyscale://x", "ray://", "ray://a b:10001", "a/b:1", "  ", ""]


@pytest.mark.parametrize("address", GOOD)
def test_the_forms_ray_init_takes_are_accepted(address: str) -> None:
    assert parse_pipeline(tiny(ray={"address": address})).ray.address == address


@pytest.mark.parametrize("address", BAD)
def test_other_addresses_are_refused_while_parsing(address: str) -> None:
    with pytest.raises(PipelineConfigError, match=r"^ray\.address: "):
        parse_pipeline(tiny(ray={"address": address}))
    with pytest.raises(InvalidArgumentError, match="ray.address"):
        connect(address)  # refused before Ray is imported or started


@pytest.mark.ray  # (CI runs it in its Ray step, where Ray is installed)
def test_host_port_split_agrees_with_rays_parser() -> None:
    raylet = pytest.importorskip("ray._raylet")
    for address in ("10.0.0.7:6379", "localhost:6379", "[::1]:6379"):
        host, port = raylet.parse_address(address)
        assert host in ("10.0.0.7", "localhost", "::1") and port == "6379"
    assert raylet.parse_address("head") is None  # what ray.init refuses as "Invalid address format"


def test_run_ray_flag_is_checked_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(tiny("rayflag")))
    assert main(["run", str(tmp_path / "p.yaml"), "--store", str(tmp_path / "st"), "--ray", "head"]) == 2
    err = capsys.readouterr().err
    assert "--ray" in err and "'head'" in err and "HOST:PORT" in err
    assert not (tmp_path / "st").exists()
