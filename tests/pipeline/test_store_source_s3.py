"""A store on object storage as a pipeline source: ``source: {store: s3://..., storage_options: ...}``.

docs/pipelines.md ("Your own data as a source"): a store source takes ``storage_options`` (as
``Store.open`` takes them), checked while the definition is parsed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.app.datasets.columns import ColumnMap
from modyn_store.app.datasets.user import append_stream
from modyn_store.app.pipeline import parse_pipeline, run_pipeline
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.core.trainings import Catalog
from tests.conftest import forget_aws_credentials

BASE = {"name": "s3store", "model": {"name": "logreg"}, "trigger": {"name": "data_amount", "every": 60},
        "selection": {"name": "all_data"}, "training": {"epochs": 1, "batch_size": 32}, "evaluation": {"slices": 2}}


def _rows(lo: int, n: int) -> pa.Table:
    x = np.random.default_rng(lo).standard_normal((n, 2))
    t = np.arange(lo, lo + n)
    return pa.table({"t": t, "k": t, "y": (x[:, 0] > 0).astype(np.int64), "a": x[:, 0], "b": x[:, 1]})


@pytest.mark.s3
def test_pipeline_replays_a_store_on_s3_with_its_storage_options(s3_store: tuple[str, dict[str, str]],
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    uri, options = s3_store
    store = Store.open(uri, create=True, storage_options=options)
    for lo in (0, 60):
        append_stream(store, _rows(lo, 60), ColumnMap(ts="t", label="y", key="k"))
    res = run_pipeline(parse_pipeline({**BASE, "source": {"store": uri, "storage_options": options}}), None)
    assert [t.training_id for t in res.trainings] == ["s3store-0000", "s3store-0001"]
    # the trainings are recorded in the source store, on S3
    reopened = Store.open(uri, storage_options=options)
    assert Catalog(reopened).train_set("s3store-0001").keys.size == 120
    # without the options the endpoint and credentials are unknown: refused while parsing
    forget_aws_credentials(monkeypatch, tmp_path)
    with pytest.raises(PipelineConfigError, match=r"^source\.storage_options: .* cannot be read"):
        parse_pipeline({**BASE, "source": {"store": uri}})


@pytest.mark.s3
def test_bad_storage_options_of_a_store_source_name_the_key(s3_store: tuple[str, dict[str, str]]) -> None:
    uri, options = s3_store
    Store.open(uri, create=True, storage_options=options)
    with pytest.raises(PipelineConfigError, match=r"source\.storage_options.*no_such_option"):
        parse_pipeline({**BASE, "source": {"store": uri, "storage_options": {**options, "no_such_option": "1"}}})
    with pytest.raises(PipelineConfigError, match=r"source\.storage_options"):
        parse_pipeline({**BASE, "source": {"store": uri, "storage_options": ["aws_region"]}})


@pytest.mark.s3
def test_run_takes_storage_options_for_a_store_source_on_s3(s3_store: tuple[str, dict[str, str]], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from modyn_store.app.cli.main import main

    uri, options = s3_store
    store = Store.open(uri, create=True, storage_options=options)
    for lo in (0, 60):
        append_stream(store, _rows(lo, 60), ColumnMap(ts="t", label="y", key="k"))
    flags = [a for k, v in options.items() for a in ("--storage-option", f"{k}={v}")]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({**BASE, "source": {"store": uri}}))
    assert main(["run", str(tmp_path / "p.yaml"), *flags, "--out", str(tmp_path / "rep")]) == 0
    assert [t.training_id for t in Catalog(Store.open(uri, storage_options=options)).list()] == \
        ["s3store-0000", "s3store-0001"]
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "aws_secret_access_key=..." in report and "aws_secret_access_key=testing" not in report
    # online, a file without a source follows --store, a URL, with the same options
    (tmp_path / "f.yaml").write_text(yaml.safe_dump({k: v for k, v in BASE.items() if k != "name"} | {"name": "f"}))
    assert main(["run", str(tmp_path / "f.yaml"), "--online", "--store", uri, *flags, "--stop-after",
                 str(store.version), "--poll", "0.01"]) == 0
    assert "online pipeline 'f' stopped" in capsys.readouterr().out
    # a key given twice, or options given in the definition too, are refused
    assert main(["run", str(tmp_path / "p.yaml"), *flags, "--storage-option", "aws_region=eu-west-1"]) == 2
    assert "--storage-option aws_region" in capsys.readouterr().err
    (tmp_path / "q.yaml").write_text(yaml.safe_dump({**BASE, "source": {"store": uri, "storage_options": options}}))
    assert main(["run", str(tmp_path / "q.yaml"), *flags]) == 2
    assert "--storage-option: the definition's source already gives storage_options" in capsys.readouterr().err
