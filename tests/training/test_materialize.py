"""Materialization straight from Lance: both read paths against a plain reference."""

from __future__ import annotations

from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest

from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.rows import RowReader
from tests.training.conftest import sample_table
from training.errors import ErasedKeysError
from training.materialize import KeyLookup, choose_strategy, materialize


@pytest.fixture
def dataset(tmp_path: Path) -> lance.LanceDataset:  # read through RowReader, the store's row API
    """Three fragments with stable row ids, keys shuffled within fragments, some rows deleted."""
    t = sample_table(900, seed=3)
    t = t.take(pa.array(np.random.default_rng(0).permutation(900)))
    ds = lance.write_dataset(t, str(tmp_path / "t.lance"), max_rows_per_file=300, enable_stable_row_ids=True)
    ds.delete("key % 11 = 0")
    return lance.dataset(str(tmp_path / "t.lance"))


@pytest.mark.parametrize("strategy", ["scan", "take"])
def test_rows_match_a_plain_read(dataset, strategy: str) -> None:
    live = np.array(dataset.to_table(columns=["key"]).column("key").to_pylist())
    keys = np.random.default_rng(1).choice(live, 200, replace=False)
    out = materialize(RowReader(dataset), keys, ["x", "img", "text", "label"], strategy=strategy, threads=2)
    assert out.strategy == strategy and sorted(out.keys.tolist()) == sorted(keys.tolist())
    ref = dataset.to_table(columns=["key", "x", "img", "text", "label"]).to_pylist()
    by_key = {r["key"]: r for r in ref}
    for i, k in enumerate(out.keys.tolist()):
        r = by_key[k]
        assert out.fixed["x"][i].tolist() == pytest.approx(r["x"])
        assert out.fixed["label"][i] == r["label"]
        assert bytes(out.var["img"].data[out.var["img"].offsets[i] : out.var["img"].offsets[i + 1]]) == r["img"]
        assert out.var["text"].rows(np.array([i]), text=True) == [r["text"]]


def test_a_masked_scan_takes_its_first_rows(dataset, monkeypatch) -> None:
    """The first ``SCAN_HEAD`` rows of a masked scan are read by take (in a thread of their
    own), the rest of their fragment by the scan; the rows are those of a plain read."""
    import training.materialize as mat

    monkeypatch.setattr(mat, "SCAN_HEAD", 20)
    taken: list[int] = []
    original = RowReader.take

    def counting(self, row_ids, columns):
        taken.append(len(row_ids))
        return original(self, row_ids, columns)

    monkeypatch.setattr(RowReader, "take", counting)
    live = np.array(dataset.to_table(columns=["key"]).column("key").to_pylist())
    keys = np.random.default_rng(2).choice(live, 300, replace=False)
    rows = RowReader(dataset)
    layout = mat.plan(rows, keys, strategy="scan")
    assert layout.head and layout.jobs[0] == (0, 20) and layout.jobs[1][0] == 20
    out = materialize(rows, keys, ["x", "label"], strategy="scan", layout=layout)
    assert taken == [20]
    ref = {r["key"]: r for r in dataset.to_table(columns=["key", "x", "label"]).to_pylist()}
    assert out.keys.tolist() == layout.keys.tolist()
    for i, k in enumerate(out.keys.tolist()):
        assert out.fixed["x"][i].tolist() == pytest.approx(ref[k]["x"]) and out.fixed["label"][i] == ref[k]["label"]


def test_missing_and_deleted_keys_are_named(dataset) -> None:
    with pytest.raises(ErasedKeysError) as info:
        materialize(RowReader(dataset), np.array([1, 22, 5000]), ["x"])  # 22 was deleted, 5000 never existed
    assert info.value.keys.tolist() == [22, 5000]


def test_duplicate_keys_are_refused(dataset) -> None:
    with pytest.raises(InvalidArgumentError, match="keys"):
        materialize(RowReader(dataset), np.array([3, 1, 3]), ["x"])


@pytest.mark.parametrize("head_rows", [30, 0])
def test_head_rows_are_read_before_the_rest(dataset, monkeypatch, head_rows: int) -> None:
    """``head_rows``: the takes that hold the first rows end before any other starts (without
    it, four threads start the later takes alongside them)."""
    import time

    import training.materialize as mat

    monkeypatch.setattr(mat, "TAKE_FIRST", 20)
    monkeypatch.setattr(mat, "TAKE_CHUNK", 40)
    live = np.array(dataset.to_table(columns=["key"]).column("key").to_pylist())
    keys = np.random.default_rng(4).choice(live, 300, replace=False)
    rows = RowReader(dataset)
    layout = mat.plan(rows, keys, strategy="take")
    assert layout.jobs[:3] == [(0, 20), (20, 60), (60, 100)]
    head = {int(layout.rid[0]), int(layout.rid[20])}  # the jobs that start below row 30
    spans: dict[int, tuple[float, float]] = {}
    original = RowReader.take

    def timed(self, row_ids, columns):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        if int(row_ids[0]) in head:
            time.sleep(0.2)  # slow head reads: the other takes would start meanwhile
        out = original(self, row_ids, columns)
        spans[int(row_ids[0])] = (t0, time.perf_counter())
        return out

    monkeypatch.setattr(RowReader, "take", timed)
    out = materialize(rows, keys, ["x"], strategy="take", threads=4, layout=layout, head_rows=head_rows)
    assert sorted(out.keys.tolist()) == sorted(keys.tolist())
    head_end = max(spans[r][1] for r in head)
    later_start = min(t0 for r, (t0, _) in spans.items() if r not in head)
    assert (later_start >= head_end) == (head_rows > 0)


def test_strategy_choice_and_lookup() -> None:
    assert choose_strategy(5, 1000) == "take" and choose_strategy(500, 1000) == "scan"
    assert choose_strategy(99, 1000) == "take" and choose_strategy(100, 1000) == "scan"
    assert choose_strategy(500, 1000, "take") == "take"
    assert choose_strategy(1000, 1000, local=True) == "take"  # a local table: takes at any share
    assert choose_strategy(5, 1000, "scan", local=True) == "scan"
    with pytest.raises(InvalidArgumentError):
        choose_strategy(1, 2, "bogus")  # type: ignore[arg-type]
    for keys in (np.array([10, 3, 7]), np.array([10, 3, 2**40])):  # dense table and sorted search
        lk = KeyLookup(keys)
        assert lk(np.array([3, 4, 2**40, 10, -5])).tolist() == [1, -1, 2 if keys[2] == 2**40 else -1, 0, -1]


@pytest.mark.parametrize("local", [True, False])
def test_auto_reads_by_take_on_a_local_table_and_by_scan_on_object_storage(dataset, local: bool) -> None:
    """``strategy="auto"``: a half of the rows is taken by row id where the table is local, and
    scanned with a mask where it is on object storage (``RowReader.local``)."""
    keys = np.array([k for k in range(0, 900, 2) if k % 11])
    out = materialize(RowReader(dataset, local=local), keys, ["x"])
    assert out.strategy == ("take" if local else "scan")
    assert sorted(out.keys.tolist()) == keys.tolist()


@pytest.mark.parametrize("strategy", ["scan", "take"])
def test_reads_of_wide_rows_ask_for_few_rows(tmp_path: Path, monkeypatch, strategy: str) -> None:
    """``READ_BYTES`` bounds what one take or scan batch reads: 20 KB rows are read a few at a
    time (the counts of ``TAKE_CHUNK`` / ``SCAN_HEAD`` rows would hold the whole table)."""
    import training.materialize as mat
    from modyn_store import Store

    store = Store.open(str(tmp_path / "wide"), create=True)
    blobs = [bytes([i % 251]) * 20_000 for i in range(300)]
    store.append(pa.table({"ts": np.arange(300), "img": pa.array(blobs, pa.binary())}))
    rows = store.as_of(None).row_reader()
    assert 20_000 <= rows.row_nbytes() < 25_000
    monkeypatch.setattr(mat, "READ_BYTES", 100_000)  # 4 rows of 20 KB and their bookkeeping
    monkeypatch.setattr(mat, "SCAN_HEAD", 50)
    read: list[int] = []
    take, scan = RowReader.take, RowReader.scan

    def counted_take(self, row_ids, columns):  # type: ignore[no-untyped-def]
        read.append(len(row_ids))
        return take(self, row_ids, columns)

    def counted_scan(self, fragment, row_ids, columns, *, batch_size=1 << 16):  # type: ignore[no-untyped-def]
        for batch in scan(self, fragment, row_ids, columns, batch_size=batch_size):
            read.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(RowReader, "take", counted_take)
    monkeypatch.setattr(RowReader, "scan", counted_scan)
    keys = np.arange(3, 300, 2)
    out = materialize(rows, keys, ["img"], strategy=strategy)  # type: ignore[arg-type]
    assert sum(read) == keys.size and max(read) == 4
    assert out.var["img"].rows(np.arange(keys.size), text=False) == [blobs[k] for k in out.keys]


def test_default_take_threads_follow_the_cpus_up_to_a_bound(monkeypatch) -> None:
    """Takes default to twice the CPUs, at most ``TAKE_THREADS`` (reads in flight stay bounded
    on large machines), never more than there are takes; an explicit count is checked."""
    import training.materialize as mat

    for cpus, want in ((1, 2), (2, 4), (64, mat.TAKE_THREADS)):
        monkeypatch.setattr(mat.os, "cpu_count", lambda cpus=cpus: cpus)
        assert mat._default_threads(None, 1000) == want
    assert mat._default_threads(None, 3) == 3 and mat._default_threads(7, 1000) == 7
    with pytest.raises(InvalidArgumentError, match="threads"):
        mat._default_threads(0, 10)


@pytest.mark.parametrize("strategy", ["scan", "take"])
def test_a_read_whose_files_a_compaction_removed_reads_them_again(tmp_path: Path, strategy: str) -> None:
    """Rows located, then the store compacted (its old data files deleted, as another process's
    compaction would) before they are read: the read continues on the latest manifest by stable
    row id, with the right rows; it raised Lance's raw 'Not found' error before."""
    from modyn_store import Store
    from training.materialize import plan

    store = Store.open(str(tmp_path / "store"), create=True)
    for i in range(4):
        store.append(sample_table(300, start=300 * i, seed=i))
    snap = store.as_of(None)
    keys = np.sort(np.random.default_rng(2).choice(1200, 400, replace=False))
    rows = snap.row_reader()
    layout = plan(rows, keys, strategy=strategy, located=snap.locate(keys))
    store.compact()
    out = materialize(rows, keys, ["x", "text"], strategy=strategy, layout=layout)
    ref = store.as_of(None).to_table(["key", "x", "text"]).to_pylist()
    by_key = {r["key"]: r for r in ref}
    assert sorted(out.keys.tolist()) == keys.tolist()
    texts = out.var["text"].rows(np.arange(out.keys.size), text=True)
    for i, k in enumerate(out.keys.tolist()):
        assert out.fixed["x"][i].tolist() == pytest.approx(by_key[k]["x"])
        assert texts[i] == by_key[k]["text"]
