"""Streams at scale: chunks cut from a batch stream, streamed ingest, sampled evaluation in a
pipeline, and replay memory that does not grow with the stream."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pipeline_helpers import tiny

from modyn_store import Store
from modyn_store.app.datasets import iter_slices
from modyn_store.app.pipeline import PipelineConfigError, parse_pipeline
from modyn_store.app.pipeline.runner import Runner, ingest, run_pipeline
from modyn_store.app.pipeline.source import load_source
from modyn_store.app.pipeline.stream import iter_chunks, open_stream


def _clicks(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"name": "clicks", "source": {
        "dataset": "synthetic_clicks", "encode": "clicks", "chunk": "ts:1",
        "params": {"n_rows": 6000, "n_days": 6, "block_rows": 700, "cardinality": 500}},
        "model": {"name": "logreg"}, "trigger": {"name": "time", "every": 2},
        "selection": {"name": "uniform", "ratio": 0.2}, "update": {"name": "retrain"},
        "evaluation": {"slices": 3, "metric": "roc_auc"}}
    cfg.update(over)
    return cfg


@pytest.mark.parametrize("rule", ["ts:1", "ts:2", "n:1000", "n:999"])
def test_chunks_of_a_stream_equal_chunks_of_the_table(rule: str) -> None:
    cfg = parse_pipeline(_clicks())
    table = load_source(cfg.source)
    stream = open_stream(cfg.source)
    got = [(i, r.read_all()) for i, r in iter_chunks(stream.schema, stream.batches(), rule)]
    want = list(iter_slices(table, rule))
    assert [i for i, _ in got] == [i for i, _ in want]
    for (_, a), (_, b) in zip(got, want):
        assert a.equals(b.replace_schema_metadata(a.schema.metadata))


def test_time_rules_count_from_the_first_row() -> None:
    ts = pa.array(np.arange(86_400 * 3, 86_400 * 7, 3_600, dtype=np.int64))
    t = pa.table({"key": np.arange(len(ts)), "ts": ts})
    got = [(i, r.read_all().num_rows) for i, r in iter_chunks(t.schema, iter(t.to_batches(max_chunksize=37)), "2d")]
    assert got == [(i, s.num_rows) for i, s in iter_slices(t, "2d")]


def test_streamed_ingest_writes_what_the_table_ingest_writes(tmp_path: Path) -> None:
    cfg = parse_pipeline(_clicks())
    a, b = Store.open(str(tmp_path / "a"), create=True), Store.open(str(tmp_path / "b"), create=True)
    ca = [c for c, _ in ingest(a, cfg, open_stream(cfg.source))]
    cb = [c for c, _ in ingest(b, cfg, load_source(cfg.source))]
    assert ca == cb and len(ca) == 6
    assert a.as_of().to_table().equals(b.as_of().to_table())
    assert [r.inserted for r in a.log()] == [r.inserted for r in b.log()]


def test_a_generated_stream_is_never_loaded_whole(tmp_path: Path) -> None:
    r = Runner(parse_pipeline(_clicks()), str(tmp_path / "s"))
    r.prepare()
    assert r.table is None and r.stream is not None and r.stream.head.num_rows <= 4096
    assert r.loop is not None and r.loop.model_params["n_classes"] == 2
    list(r.run())
    assert r.result is not None and r.result.rows == 6000 and len(r.result.trainings) == 2


def test_sampled_evaluation_in_a_pipeline(tmp_path: Path) -> None:
    res = run_pipeline(parse_pipeline(_clicks(evaluation={"slices": 3, "metric": "roc_auc", "sample": 300,
                                                         "stratify": True, "seed": 4})), str(tmp_path / "s"))
    margins = np.array(res.result.margins)
    assert margins.shape == (2, 3) and np.all(margins > 0)
    evals = Store.open(str(tmp_path / "s")).read_table("evaluations")
    assert evals is not None and set(evals.column("n").to_pylist()) == {300}
    full = run_pipeline(parse_pipeline(_clicks(evaluation={"slices": 3, "metric": "roc_auc", "fraction": 1.0})),
                        str(tmp_path / "t"))
    none = run_pipeline(parse_pipeline(_clicks()), str(tmp_path / "u"))
    assert full.result.matrix == none.result.matrix  # a sample covering each slice is the full evaluation
    assert np.all(np.array(full.result.margins) == 0)
    md = (tmp_path / "md")
    from modyn_store.app.report.build import render_report

    files = render_report([res.result], md)
    row = next(x for x in Path(files.markdown).read_text().splitlines() if x.startswith("| clicks"))
    assert row.split("|")[13].strip() not in ("", "-")  # the interval of the mean is reported


@pytest.mark.parametrize("evaluation, key", [
    ({"sample": 10, "fraction": 0.5}, "evaluation.fraction"),
    ({"stratify": True}, "evaluation.stratify"),
    ({"sample": 0}, "evaluation.sample"),
    ({"fraction": 2.0}, "evaluation.fraction"),
])
def test_bad_evaluation_samples_name_the_key(evaluation: dict[str, Any], key: str) -> None:
    with pytest.raises(PipelineConfigError) as info:
        parse_pipeline(tiny(evaluation={"slices": 4, **evaluation}))
    assert info.value.key == key


_CHILD = """
import json, resource, sys, tempfile
from modyn_store.app.pipeline.config import parse_pipeline
from modyn_store.app.pipeline.runner import run_pipeline
n, days = int(sys.argv[1]), int(sys.argv[2])
cfg = parse_pipeline({"name": "mem", "source": {"dataset": "synthetic_clicks", "encode": "clicks", "chunk": "n:50000",
        "params": {"n_rows": n, "n_days": days, "block_rows": 16384, "cardinality": 1000}},
    "model": {"name": "logreg"}, "trigger": {"name": "time", "every": 4},
    "selection": {"name": "uniform", "ratio": 0.01}, "update": {"name": "retrain"},
    "training": {"batch_size": 512},
    "evaluation": {"slices": 4, "metric": "roc_auc", "sample": 2000, "stratify": True}})
res = run_pipeline(cfg, tempfile.mkdtemp() + "/s")
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rows": res.rows,
                  "trainings": len(res.trainings)}))
"""


@pytest.mark.slow
def test_replay_memory_does_not_grow_with_the_stream(tmp_path: Path) -> None:
    # the same pipeline over 10x the rows (same chunk size and sample sizes, 10x the days): a
    # stream held in memory would add ~340 MB (payload of 1.8M rows); the bound allows allocator
    # and Lance metadata slack only
    # glibc's per-thread malloc arenas (Lance's and torch's threads) fragment by a few hundred MB
    # over a long run whatever the data structures do; two arenas keep that out of the figure, so
    # the test sees what the code holds (docs/PERFORMANCE.md has the figures with and without)
    import os

    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    out = []
    for n, days in ((200_000, 8), (2_000_000, 80)):
        proc = subprocess.run([sys.executable, str(script), str(n), str(days)], capture_output=True, text=True,
                              check=True, timeout=900, env=env)
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    small, large = out
    assert large["rows"] == 10 * small["rows"] and large["trainings"] > small["trainings"] >= 1
    assert large["peak_mb"] <= small["peak_mb"] * 1.25 + 64, out
