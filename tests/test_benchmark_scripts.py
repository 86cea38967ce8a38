"""Every benchmark script runs to its end at its smallest inputs and prints what it exists to print.

The scripts under ``benchmarks/`` are run by hand (``python benchmarks/X.py ...``, outside asv),
so nothing else notices when one of them breaks. Each case runs one script (or its build and
measure calls) in a fresh interpreter from the repository root, with ``PYTHONPATH`` set to the
root and every store, output and temporary folder under the test's ``tmp_path``; it passes when
the script exits 0 and its output matches the patterns of its result rows (a ratio, a label,
a figure). No timing is judged.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

NUM = r"[0-9][0-9,]*\.?[0-9]*"  # a printed figure: 12, 1,234, 0.93


@dataclass(frozen=True)
class Case:
    """One run of a script: its argument lists (run in order, the output of the last one is
    checked), the patterns its output must hold, and what it needs beyond the base install."""

    id: str
    script: str
    runs: tuple[tuple[str, ...], ...]
    expect: tuple[str, ...]
    needs: tuple[str, ...] = ()
    data: bool = False
    timeout: float = 180.0


def _first_query(numba: str, cache: str) -> str:
    """The line ``first_query.py`` prints for a read of its 20,000-row store."""
    return (rf"^rows=20000 first_ms=\d+ second_ms=\d+ numba_imported={numba} open_and_first_ms={NUM}"
            rf" bytecode_cached=(True|False) read_cache={cache}$")


def _case(id: str, script: str, args: str, *expect: str, needs: tuple[str, ...] = (), data: bool = False,
          then: str | tuple[str, ...] = ()) -> Case:
    runs = tuple(tuple(a.split()) for a in (args, *((then,) if isinstance(then, str) else then)))
    return Case(id, script, runs, expect, needs, data)


CASES = [
    _case("bench_store", "bench_store.py", "--rows 20000 --repeat 1 --small-versions 0",
          rf"\| append 20,000 rows, fresh \| {NUM} M rows/s \| lance\.write_dataset: {NUM} M rows/s \| {NUM} \|",
          rf"\| delete 1% of 20,000 rows \(`key % 100 = 0`\) \| {NUM} ms \| LanceDataset\.delete: {NUM} ms \| {NUM} \|",
          rf"\| keys\(\) as of latest \(1% deleted\), 20,000 rows, runs keys \| {NUM} ms \| raw key scan {NUM} ms"
          rf" \| {NUM}x raw \| Lance with the deletions: {NUM} ms \({NUM}\)"),
    _case("bench_store-shuffled", "bench_store.py", "--rows 20000 --repeat 1 --reads-only --keys shuffled",
          rf"\| keys\(\) as of latest \(1% deleted\), 20,000 rows, shuffled keys \| {NUM} ms \| raw key scan {NUM} ms;"
          rf" raw key scan \+ `np\.sort` {NUM} ms \| {NUM}x raw \({NUM}x scan \+ sort\)"),
    _case("bench_store-spread", "bench_store.py", "--rows 20000 --repeat 1 --reads-only --keys spread --kernels",
          r"Numba loaded: True",
          rf"\| iter_keys\(\) as of latest \(1% deleted\), 20,000 rows, spread keys \| {NUM} ms \| raw key scan {NUM} ms"
          rf" \| {NUM}x raw \| Lance with the deletions: {NUM} ms \({NUM}\)"),
    _case("spread_keys", "spread_keys.py", "--rows 100000 --repeat 1",
          rf"Numba's import and the kernels' load, once a process: {NUM} ms",
          rf"^\| 100,000 \| {NUM} ns/key \({NUM} ms\) \| {NUM} ns/key \({NUM} ms\) \| {NUM} ns/key \| {NUM} ns/key"
          rf" \| {NUM} ns/key \({NUM} ms\) \| {NUM}x \|$"),
    _case("bench_store-gaps", "bench_store.py", "--rows 20000 --repeat 1 --reads-only --keys gaps",
          rf"\| to_batches\(\) as of latest - 3 \(before the delete\), 20,000 rows, gaps keys \| {NUM} ms \|"
          rf" raw key scan {NUM} ms; raw stream of all columns {NUM} ms \| {NUM}x raw \({NUM}x the stream\)"),
    _case("bench_store-writes", "bench_store.py", "--rows 20000 --repeat 1 --writes-only --small-versions 5",
          rf"\| then delete 1% more \(`key % 100 = 1`\) \| {NUM} ms \| Lance \(10 appends\): {NUM} ms \| {NUM} \|",
          rf"\| then delete 1% more by keys \(`delete\(keys=\.\.\.\)`; Lance: `key IN \(\.\.\.\)` or a merge-insert delete\) \| "
          rf"{NUM} ms \| Lance \(one write\), merge-insert delete of the keys: {NUM} ms \| {NUM} \|",
          rf"\| append 20,000 rows to a 10-version table \| {NUM} ms \| Lance, the store's layout \(10 appends, "
          rf"`_version`, stable row ids\): {NUM} ms \| {NUM} \|",
          rf"\| 4 appends of 100 rows \| {NUM} ms/version \| Lance append: {NUM} ms/version \| -?{NUM} ms fixed cost"),
    _case("bench_engine", "bench_engine.py", "--quick --no-naive",
          rf"^\| top-1000 of 1e\+06 float32, unsorted \| {NUM} m?s \| np\.partition \+ threshold: {NUM} m?s \| {NUM}x \|",
          rf"^\| weighted sample .* \| {NUM} m?s \| NumPy Efraimidis-Spirakis: {NUM} m?s \| {NUM}x \|",
          rf"^\| MMD\^2 permutation test, .* \| {NUM} m?s \| NumPy, same matmul trick: {NUM} m?s \| {NUM}x \|",
          rf"^\| class-balanced uniform quota, .* \| {NUM} s = {NUM} M rows/s \|", needs=("torch",)),
    _case("bench_policies", "bench_policies.py", "--rows 20000 --limit 100",
          rf"^ *scan: +{NUM} s +{NUM} M rows/s +peak \+ *-?{NUM} MiB +selected 20,000$",
          rf"^uniform: streaming / numpy time {NUM}x, peak memory {NUM}x$",
          rf"^loss_top: streaming / numpy time {NUM}x"),
    _case("bench_training", "bench_training.py", "--rows 20000 --repeats 1 --threads 1",
          r"^# Numba loaded: False$", rf"^ratio_time_to_selection +{NUM}$", rf"^ratio_end_of_epoch +{NUM}$",
          rf"^ratio_warm_vs_gather +{NUM}$", needs=("torch",)),
    _case("bench_training-kernels", "bench_training.py", "--rows 20000 --repeats 1 --threads 2 --kernels",
          r"^# Numba loaded: True$", rf"^ratio_warm_vs_gather_order_drawn_ahead +{NUM}$",
          rf"^ratio_order_kernel_vs_numpy +{NUM}$", rf"^ratio_order_kernel_vs_randperm +{NUM}$", needs=("torch",)),
    _case("bench_training-cold", "bench_training.py", "--rows 20000 --repeats 1 --cold-only",
          rf"^scan_epoch +{NUM} s \[{NUM} - {NUM}\]  LanceDataset / this: {NUM}$", needs=("torch",)),
    _case("read_paths", "read_paths.py", "--rows 20000 --repeat 1 --shares 0.25",
          rf"^share 0\.25: masked scan {NUM} ms, takes {NUM} ms, scan / take {NUM}$"),
    _case("read_paths-s3", "read_paths.py", "--rows 20000 --repeat 1 --shares 0.25 --s3",
          rf"^# 20,000 rows of 272 bytes, S3 \(local moto endpoint\); medians of 1 interleaved reads$",
          needs=("moto", "boto3")),
    _case("bench_pipeline", "bench_pipeline.py", "",
          rf"^ +periodic_retrain: +{NUM} s, \d+ trainings, \d+ samples, mean accuracy 0\.\d{{3}}$",
          needs=("torch",)),
    _case("kept_buffers", "kept_buffers.py", "--batches 2 --rows 100000 --repeat 1",
          rf"^\| 2 run checksums of 65,536 keys \| {NUM} ms \| fresh temporaries: {NUM} ms \| {NUM}x \|$",
          rf"^\| hashed lookup of 100,000 shuffled keys \| {NUM} ms \| fresh temporaries: {NUM} ms"
          rf" \| {NUM}x \|$",
          rf"^\| iter_keys\(\) of 100,000 shuffled keys, 1% deleted \| {NUM} ms \| keys copied into the record: "
          rf"{NUM} ms \| {NUM}x \|$"),
    _case("append_phases", "append_phases.py", "--rows 20000 --rounds 2",
          rf"^\| the append \| {NUM} \|$", rf"^\| store's own work \(the append minus lance\.write_dataset\) \| {NUM} \|$",
          rf"^\| key checksum \| {NUM} \|$", rf"^\| the record's exclusive create \(the commit\) \| {NUM} \|$"),
    _case("first_query", "first_query.py", "{tmp}/fq 20000", _first_query("(True|False)", "cold"),
          then="{tmp}/fq 20000"),
    # the first read after a delete finds the entry the delete wrote for its version: it derives nothing
    _case("first_query-after-delete", "first_query.py", "{tmp}/fq 20000", _first_query("(True|False)", "warm"),
          then=("{tmp}/fq 20000", "{tmp}/fq 20000 --delete-next", "{tmp}/fq 20000")),
    # a stream of spread keys keeps what it dropped (cold), the next process's stream derives nothing (warm)
    _case("first_query-spread-stream", "first_query.py", "{tmp}/fq 20000 --spread",
          _first_query("False", "cold samples_entries=1"), then="{tmp}/fq 20000 --stream"),
    _case("first_query-spread-stream-again", "first_query.py", "{tmp}/fq 20000 --spread",
          _first_query("False", "warm samples_entries=1"), then=("{tmp}/fq 20000 --stream", "{tmp}/fq 20000 --stream")),
    _case("long_logs", "long_logs.py", "--versions 30 --reads 2",
          rf"^\| [0-9,]+ versions, [0-9,]+ live keys \(built in {NUM} s\) \| keys\(\) {NUM} ms \| count\(\) {NUM} ms "
          rf"\| raw key scan {NUM} ms \| {NUM}x raw \| per version {NUM} us \| verify\(deep=True\) {NUM} s "
          rf"\| fresh process: open \+ keys\(\) {NUM} ms with nothing kept, {NUM} ms with the log kept by an "
          rf"earlier one, Lance open \+ key scan {NUM} ms \|$"),
    _case("late_keys", "late_keys.py", "--rows 20000 --appends 4 --batch 100 --rounds 2",
          rf"^20,000 rows in 4 appends, 2 late appends of 100 keys \(keys in a narrow stretch\): store {NUM} ms, "
          rf"Lance merge_insert \(insert the new keys\) {NUM} ms, {NUM}x the store's time; each late append's keys "
          rf"fall in the key ranges of up to [12] of the 4 appends$"),
    _case("late_keys-spread-index", "late_keys.py", "--rows 20000 --appends 4 --batch 100 --rounds 3 --spread --index",
          r"^key index: 20,000 rows; Lance BTREE on key: 20,000 rows$",
          rf"^20,000 rows in 4 appends, 3 late appends of 100 keys \(keys spread over the range, key indexes built\): "
          rf"store {NUM} ms, Lance merge_insert \(insert the new keys\) {NUM} ms, {NUM}x the store's time; each late "
          rf"append's keys fall in the key ranges of up to 4 of the 4 appends$"),
    _case("small_deletes", "small_deletes.py", "--rows 20000 --deletes 20 --reads 1",
          rf"^20 deletes of one key of 20,000 rows: median {NUM} ms, p90 {NUM} ms, max {NUM} ms; tombstone fragments "
          rf"after each: mean {NUM}, max 16, at the end \d+$",
          rf"^Lance, the same deletes: median {NUM} ms, p90 {NUM} ms, max {NUM} ms \({NUM}x the store's median time\)$",
          rf"^fresh process, read cache off: open \+ keys\(\) {NUM} ms, Lance open \+ key scan {NUM} ms \({NUM}x the raw scan\)$"),
    _case("small_deletes-no-reads", "small_deletes.py", "--rows 20000 --deletes 20 --reads 0",
          rf"^Lance, the same deletes: median {NUM} ms, p90 {NUM} ms, max {NUM} ms \({NUM}x the store's median time\)$"),
    _case("first_query-raw", "first_query.py", "{tmp}/fq 20000",
          rf"^rows=20000 raw_first_ms={NUM} raw_second_ms={NUM}$", then="{tmp}/fq 20000 --raw"),
    _case("gpu_check", "gpu_check.py", "--rows 20000 --batch-size 1024 --repeats 1",
          rf"^resident\*? +{NUM} +{NUM} +{NUM} +{NUM}$", rf"^streamed\*? +{NUM} +{NUM} +{NUM} +{NUM}$",
          needs=("torch",)),
    _case("grid_positions", "grid_positions.py", "--pipelines 1 --repeats 1",
          rf"^\| 0 \| \d+ \| \d+ \| \d+ \| {NUM} \| {NUM} \|$", rf"^max/min wall: {NUM}$",
          needs=("torch", "matplotlib")),
    _case("index_build", "index_build.py", "--rows 20000 --path {tmp}/ib",
          rf"^keys in append order: build [0-9.]+ s, peak RSS grew \d+ MB, 20,000 rows"
          rf" \(code from {re.escape(str(REPO))}\)$",
          r"^keys random order: build [0-9.]+ s, peak RSS grew \d+ MB, 20,000 rows"),
    _case("integrity_overhead", "integrity_overhead.py", "20000",
          rf"^rows=20000 keys\(\) checked {NUM} ms, unchecked {NUM} ms, ratio {NUM}$"),
    # every phase but Lance's own scan (raw) and two reads whose code other phases run (scores: quota's
    # stream; score_table_old: score_table at another version)
    _case("scale_store", "scale_store.py", "--rows 20000 --versions 12 --score-writes 3 --path {tmp}/ss --phases "
          "build,keys_old,keys_latest,keys_array,score_table,top_k,weighted,quota",
          r'^\{"phase": "build", "rows": 20000, "versions": \d+,', r'^\{"phase": "keys_old", .*"rows": 4998,',
          r'^\{"phase": "keys_latest", .*"rows": 19800, "result": 19800,',
          r'^\{"phase": "score_table", .*"rows": 19800,', r'^\{"phase": "top_k", .*"result": 1000,',
          r'^\{"phase": "weighted", .*"result": 1000,', r'^\{"phase": "quota", .*"result": 198,'),
    _case("take_keys", "take_keys.py", "--rows 20000 --versions 4 --keys 50 --many 2000 --few 7 --path {tmp}/tk",
          r'^\{"phase": "build", "rows": 20000, "versions": 5,', r'^\{"phase": "take", "keys": 50, "first_s": ',
          r'^\{"phase": "old_many", "keys": 2000,', r'^\{"phase": "lance_in", "keys": 50,',
          r'^\{"phase": "take_few_noindex", "keys": 7, "first_s": ', r'^\{"phase": "lance_in_few", "keys": 7,',
          r'^\{"phase": "lance_in_few_late", "keys": 7,',
          r'^\{"phase": "reindex", "seconds": '),
    _case("time_boundaries", "time_boundaries.py", "--rows 20000 --every 0.1 --span 100 --repeat 1",
          rf"^float64 times: +{NUM} ms  999 firings$", rf"^int64 ms times: +{NUM} ms  999 firings$"),
    _case("trigger_passes", "trigger_passes.py", "--rows 20000 --versions 4 --repeat 1",
          rf"^ratio 0\.01: selection {NUM} s \(one pass\) vs {NUM} s \(count, then sample\); locate {NUM} s",
          rf"^delta of one version: {NUM} s \(its fragments\) vs {NUM} s", rf"^raw key stream: {NUM} s$"),
    _case("vector_index", "vector_index.py", "--n 2000 --d 8 --queries 10 --partitions 4 --sub-vectors 2 "
          "--kinds ivf_pq --sweep 2:0",
          rf"^exact brute force, batched: {NUM} ms/query$",
          rf"^ivf_pq nprobes=2 refine_factor=0: one at a time {NUM} ms/query \(recall@10 [01]\.\d{{3}}, {NUM}x",
          needs=("lancedb",)),
    _case("append_files", "append_files.py", "--rows 20000 --width 2",
          rf"^rows/s: streamed {NUM}, whole {NUM}; time ratio streamed/whole {NUM}; peak RSS ratio {NUM}$"),
    _case("stream_merge", "stream_merge.py", "--k 1000 --chunks 4 --chunk 4096",
          r"^rows 16,384, k = budget = 1,000, chunks of 4,096$",
          rf"^top-k:  TopK streamed {NUM} s, np\.argpartition in memory {NUM} s, ratio {NUM}$",
          rf"^weighted: WeightedSampler streamed {NUM} s, .* ratio {NUM}$"),
    _case("scale_out-s3", "scale_out.py", "--rows 4000 --repeat 1 --only s3",
          rf"^\| append 1000 rows \| S3 \(local moto endpoint\) \| {NUM} ms \|$",
          rf"^\| as_of\(1\)\.to_table\(\['x'\]\) \| local folder \| {NUM} ms \|$", needs=("moto", "boto3")),
    _case("s3_requests", "s3_requests.py", "--rows 1000 --versions 3",
          r"^keys of the latest version +store +\d+ +\d+ +\d+ +\d+ +0 +0 +0 +\d+ +" + NUM + "$",
          r"^delete 10 keys +raw Lance +\d+ ", needs=("moto", "boto3")),
    _case("scale_out-ray", "scale_out.py", "--rows 4000 --repeat 1 --only ray --only quota",
          rf"^\| scoring pass \| Ray, 2 worker\(s\) \| {NUM} rows/s \|$",
          rf"^\| selection class_balanced\(ratio=0\.1\), 10 classes \| Ray, 2 worker\(s\) \| {NUM} rows/s \|$",
          needs=("ray", "torch")),
    _case("verify_scale", "verify_scale.py", "--rows 20000",
          rf"^\| quick \| {NUM} s \| {NUM} MiB \| True \|$", rf"^\| deep \| {NUM} s \| {NUM} MiB \| True \|$"),
    _case("purge_keys", "purge_keys.py", "--rows 20000 --keys 5000",
          rf'^\{{"side": "now", "rows": 20000, "keys": 5000, "erase_s": {NUM}, "delete_s": {NUM},'
          rf' "vacuum_s": {NUM}, "vacuum_purged": 5000,'
          r' "rows_left_of_purged_keys": 0\}$',
          rf'^\{{"side": "lance", "rows": 20000, "keys": 5000, "erase_s": {NUM}, "rows_left_of_purged_keys": 0\}}$'),
    _case("drift_deletions", "drift_deletions.py", "--window 2000 --columns 2 --rows 100 --repeat 1",
          rf"\| one key deleted outside the windows \| {NUM} \|", rf"\| one key deleted inside the current window \| {NUM} \|"),
    _case("progress_saves", "progress_saves.py",
          "--rows 3000 --dim 4 --hidden 8 --epochs 1 --save-every 4 --repeat 1 --folder {tmp}/progress",
          rf"\| save_every=0 \| {NUM} \| 1\.00 \| 0 \|", rf"\| save_every=4 \| {NUM} \| {NUM} \| 3 \| -?{NUM} \| {NUM} \|"),
    _case("drift_decisions", "drift_decisions.py", "--data {data} --datasets elec2 --limit 4000 --out {tmp}/drift.md",
          rf"^\| elec2 \| ks p<0\.01 \| \d+ \| \d+ \| {NUM} \| \d+ \| \d+ \| {NUM} / {NUM} \| 0\.\d{{4}} \|$",
          r"^\| elec2 \| train once \| - \| \d+ \| - \| 1 \| \d+ \| ",
          # --limit 4000: 4 firings of a 1,000-row amount trigger (the whole stream gives 45)
          r"^\| elec2 \| amount every 1000 \| - \| 4 \| - \| 4 \| ", needs=("torch",), data=True),
    _case("selection_claims", "selection_claims.py",
          "--data {data} --datasets elec2 --limit 4000 --out {tmp}/claims.md",
          r"^\| elec2 \| uniform 30% \| \d+ \| \d+ \| 0\.\d{4} \| 0\.\d{4} \|$",
          r"^\| elec2 \| loss importance 30% of each batch \| \d+ \| \d+ \| 0\.\d{4} \| 0\.\d{4} \|$",
          # --limit 4000 (83 days): one training of a 56-day trigger (the whole stream gives 16)
          r"^\| elec2 \| uniform 30% \| 1 \| \d+ \|", needs=("torch",), data=True),
]


def test_the_helper_modules_import_as_asv_imports_them() -> None:
    """asv imports every module under ``benchmarks/`` as ``benchmarks.<name>``, the helpers
    (``_*.py``) included and possibly before any script has put their folder on ``sys.path``:
    each must import on its own, in a fresh process."""
    helpers = sorted(p.stem for p in (REPO / "benchmarks").glob("_*.py") if p.stem != "__init__")
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module('benchmarks.' + m)\n"
    for name in helpers:
        done = subprocess.run([sys.executable, "-c", code, name], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"benchmarks/{name}.py: {done.stderr[-2000:]}"


def test_every_script_has_a_case() -> None:
    """A new script under ``benchmarks/`` gets a case here (or fails this check); modules whose
    name starts with ``_`` are what the scripts import, not scripts."""
    scripts = {p.name for p in (REPO / "benchmarks").glob("*.py") if not p.name.startswith("_")}
    assert scripts == {c.script for c in CASES}


@pytest.mark.parametrize(
    "case",
    # cases that need Ray also run in CI's Ray step (-m ray), where Ray is installed
    [pytest.param(c, id=c.id, marks=[pytest.mark.ray] if "ray" in c.needs else []) for c in CASES],
)
def test_script_runs_small(case: Case, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The script exits 0 at its smallest inputs and prints its result rows."""
    for module in case.needs:
        pytest.importorskip(module)
    data = str(request.getfixturevalue("data_dir")) if case.data else ""
    if "ray" in case.needs:
        # Ray puts its sockets under TMPDIR, and a socket path may not exceed 107 bytes
        tmp = Path(tempfile.mkdtemp(prefix="bs-"))
        request.addfinalizer(lambda: shutil.rmtree(tmp, ignore_errors=True))
    else:
        tmp = tmp_path / "tmp"
        tmp.mkdir()
    # TMPDIR: the scripts' own temporary folders (tempfile.mkdtemp) land under tmp_path too
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp)}
    out = ""
    for args in case.runs:
        argv = [a.format(tmp=tmp_path, data=data) for a in args]
        done = subprocess.run([sys.executable, str(REPO / "benchmarks" / case.script), *argv], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=case.timeout)
        assert done.returncode == 0, f"{case.script} {' '.join(argv)} exited {done.returncode}:\n{done.stderr[-4000:]}"
        out = done.stdout
    for pattern in case.expect:
        assert re.search(pattern, out, re.M), f"{case.script}: no line matches {pattern!r} in:\n{out[-4000:]}"
