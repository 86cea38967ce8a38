"""Loaders of the large benchmarks, on small files made here; downloads served on loopback only."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store.app.datasets import DATASETS, ChecksumMismatchError, DownloadError, fetch, load
from modyn_store.app.datasets.criteo import iter_criteo_day
from modyn_store.app.datasets.synthetic import click_schema
from modyn_store.core.errors import InvalidArgumentError, InvalidNameError


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving ``tmp_path / 'www'``; yields (base URL, folder)."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _criteo_lines(rng: np.random.Generator, n: int) -> list[list[str]]:
    rows = []
    for _ in range(n):
        label = str(int(rng.integers(0, 2)))
        ints = ["" if rng.random() < 0.2 else str(int(rng.integers(-2, 5000))) for _ in range(13)]
        cats = ["" if rng.random() < 0.2 else f"{int(rng.integers(0, 2**32)):08x}" for _ in range(26)]
        rows.append([label, *ints, *cats])
    return rows


def _write_day(path: Path, rows: list[list[str]]) -> None:
    with gzip.open(path, "wt") as fh:
        for r in rows:
            fh.write("\t".join(r) + "\n")


def test_criteo_day_parses_like_a_plain_reference(tmp_path: Path) -> None:
    rows = _criteo_lines(np.random.default_rng(0), 300)
    _write_day(tmp_path / "day_0.gz", rows)
    batches = list(iter_criteo_day(tmp_path / "day_0.gz", day=0, key_offset=10, block_bytes=4096))
    assert len(batches) > 1  # streamed in several blocks
    t = pa.Table.from_batches(batches)
    assert t.schema == click_schema("day") and t.num_rows == 300
    assert t.column("key").to_pylist() == list(range(10, 310))
    assert t.column("label").to_pylist() == [int(r[0]) for r in rows]
    for k in range(13):
        assert t.column(f"i{k + 1}").to_pylist() == [int(r[1 + k]) if r[1 + k] else 0 for r in rows]
    for k in range(26):
        assert t.column(f"c{k + 1}").to_pylist() == [int(r[14 + k], 16) if r[14 + k] else -1 for r in rows]
    assert all(t.column(c).null_count == 0 for c in t.column_names)
    capped = pa.Table.from_batches(iter_criteo_day(tmp_path / "day_0.gz", max_rows=7, block_bytes=4096))
    assert capped.num_rows == 7


def test_criteo_multi_day_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    _write_day(tmp_path / "day_0.gz", _criteo_lines(rng, 20))
    _write_day(tmp_path / "day_1.gz", _criteo_lines(rng, 30))
    t = load("criteo_1tb", tmp_path, days=[0, 1])
    assert t.num_rows == 50
    assert np.array_equal(t.column("key").to_numpy(), np.arange(50))
    assert t.column("ts").to_pylist() == [0] * 20 + [1] * 30
    with pytest.raises(InvalidArgumentError, match="day"):
        load("criteo_1tb", tmp_path, days=[24])


def test_fetch_verifies_checksum(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    payload = np.random.default_rng(2).bytes(300_000)
    (root / "blob.bin").write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "cache" / "blob.bin"
    assert fetch(f"{base}/blob.bin", dest, sha256=good, chunk_bytes=4096) == dest
    assert dest.read_bytes() == payload
    # a cached, verified copy is used without the server
    (root / "blob.bin").unlink()
    assert fetch(f"{base}/blob.bin", dest, sha256=good).read_bytes() == payload


def test_fetch_checksum_failure_leaves_nothing(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    (root / "blob.bin").write_bytes(b"tampered")
    dest = tmp_path / "cache" / "blob.bin"
    wrong = hashlib.sha256(b"original").hexdigest()
    with pytest.raises(ChecksumMismatchError) as info:
        fetch(f"{base}/blob.bin", dest, sha256=wrong)
    assert info.value.expected == wrong and info.value.actual == hashlib.sha256(b"tampered").hexdigest()
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    # a cached file with the wrong digest is downloaded again
    dest.write_bytes(b"stale")
    right = hashlib.sha256(b"tampered").hexdigest()
    assert fetch(f"{base}/blob.bin", dest, sha256=right.upper()).read_bytes() == b"tampered"


def test_fetch_errors(server: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(DownloadError, match="404"):
        fetch(f"{base}/missing.bin", tmp_path / "x")
    assert not (tmp_path / "x").exists() and [p.name for p in tmp_path.iterdir()] == ["www"]
    with pytest.raises(InvalidArgumentError, match="sha256"):
        fetch(f"{base}/x", tmp_path / "x", sha256="abc")
    with pytest.raises(InvalidArgumentError, match="url"):
        fetch("file:///etc/passwd", tmp_path / "x")


def test_criteo_download_end_to_end(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    rows = _criteo_lines(np.random.default_rng(3), 40)
    _write_day(root / "day_2.gz", rows)
    digest = hashlib.sha256((root / "day_2.gz").read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    t = load("criteo_1tb", None, days=[2], cache_dir=cache, url_template=base + "/day_{day}.gz", sha256={2: digest})
    assert t.num_rows == 40 and set(t.column("ts").to_pylist()) == {2}
    assert (cache / "day_2.gz").is_file()
    with pytest.raises(ChecksumMismatchError):
        load("criteo_1tb", None, days=[2], cache_dir=tmp_path / "c2", url_template=base + "/day_{day}.gz",
             sha256={2: "0" * 64})  # fmt: skip


def test_huffpost_and_arxiv_json_lines(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    news = [
        {"headline": "B  story", "category": "POLITICS", "short_description": "d1", "date": "2014-05-02"},
        {"headline": "A story", "category": "SPORTS", "short_description": "d2", "date": "2012-01-30"},
        {"headline": "C story", "category": "POLITICS", "short_description": "d3", "date": "2014-05-02"},
    ]
    (root / "News_Category_Dataset_v3.json").write_text("\n".join(json.dumps(r) for r in news) + "\n")
    hp = load("huffpost", None, url=f"{base}/News_Category_Dataset_v3.json", cache_dir=tmp_path / "hp")
    assert hp.column("key").to_pylist() == [1, 0, 2]
    assert hp.column("text").to_pylist() == ["A story", "B story", "C story"]
    assert hp.column("label").to_pylist() == [1, 0, 0]
    fixed = load("huffpost", root / "News_Category_Dataset_v3.json", categories=["SPORTS", "POLITICS", "TECH"])
    assert fixed.column("label").to_pylist() == [0, 1, 1]
    with pytest.raises(InvalidArgumentError, match="categories"):
        load("huffpost", root / "News_Category_Dataset_v3.json", categories=["SPORTS"])
    papers = [
        {"id": "0704.0001", "title": "Late\n paper", "categories": "hep-ph math.CO",
         "versions": [{"version": "v1", "created": "Mon, 2 Apr 2007 19:18:42 GMT"}]},
        {"id": "0704.0002", "title": "Early paper", "categories": "cs.LG",
         "versions": [{"version": "v1", "created": "Sat, 31 Mar 2007 23:00:00 GMT"}]},
    ]  # fmt: skip
    (root / "arxiv.json").write_text("\n".join(json.dumps(p) for p in papers))
    ax = load("arxiv", root / "arxiv.json")
    assert ax.column("id").to_pylist() == ["0704.0002", "0704.0001"]
    assert ax.column("text").to_pylist() == ["Early paper", "Late paper"]
    assert ax.column("category").to_pylist() == ["cs.LG", "hep-ph"]
    assert ax.column("ts").cast(pa.int64()).to_pylist() == [1175382000, 1175541522]
    (root / "bad.json").write_text("{not json}\n")
    with pytest.raises(InvalidArgumentError, match="bad.json:1"):
        load("arxiv", root / "bad.json")
    with pytest.raises(InvalidArgumentError, match="url="):
        load("arxiv")
    with pytest.raises(InvalidNameError):
        load("arxiv", None, url=f"{base}/")


def test_yearbook_folder_and_archive(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(4)
    src = tmp_path / "faces"
    expected = {}
    for gender, year, tag in [("M", 1950, "a"), ("F", 1930, "b"), ("F", 1950, "c")]:
        (src / gender).mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(40, 36), dtype=np.uint8)
        Image.fromarray(pixels).save(src / gender / f"{year}_school_{tag}.png")
        ref = Image.fromarray(pixels).resize((8, 8), Image.Resampling.BILINEAR)
        expected[f"{gender}/{year}_school_{tag}.png"] = np.asarray(ref, dtype=np.float32).reshape(-1) / 255
    t = load("yearbook", src, size=8)
    assert t.column("ts").to_pylist() == [1930, 1950, 1950]
    assert t.column("name").to_pylist() == ["F/1930_school_b.png", "F/1950_school_c.png", "M/1950_school_a.png"]
    assert t.column("label").to_pylist() == [0, 0, 1]
    for name, img in zip(t.column("name").to_pylist(), t.column("image").to_pylist()):
        assert np.allclose(img, expected[name], atol=1e-6)
    archive = tmp_path / "faces.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="faces_aligned")
    from_tar = load("yearbook", archive, size=8)
    assert from_tar.column("image").equals(t.column("image"))
    assert from_tar.column("label").equals(t.column("label"))
    (src / "X").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(src / "X" / "1990_x.png")
    with pytest.raises(InvalidArgumentError, match="1990_x"):
        load("yearbook", src)


def test_cloc_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    feats = rng.standard_normal((6, 4)).astype(np.float32)
    np.save(tmp_path / "features.npy", feats)
    np.save(tmp_path / "labels.npy", np.array([3, 1, 4, 1, 5, 9]))
    np.save(tmp_path / "time.npy", np.array([50, 10, 30, 10, 20, 0]))
    t = load("cloc", tmp_path)
    order = np.lexsort((np.arange(6), [50, 10, 30, 10, 20, 0]))
    assert t.column("key").to_pylist() == order.tolist()
    assert np.allclose(np.stack(t.column("features").to_numpy(zero_copy_only=False)), feats[order])
    assert t.column("ts").cast(pa.int64()).to_pylist()[0] == 1_072_915_200
    assert DATASETS["cloc"].n_classes == 712
    np.save(tmp_path / "labels.npy", np.array([1, 2]))
    with pytest.raises(InvalidArgumentError, match="labels"):
        load("cloc", tmp_path)


def test_fetch_without_a_checksum_does_not_serve_another_urls_file(server: tuple[str, Path], tmp_path: Path) -> None:
    """Two URLs whose files share a name (v1/data.bin, v2/data.bin) share a cache path: the
    second fetch got the first file's bytes when no checksum was given."""
    base, root = server
    for v in ("v1", "v2"):
        (root / v).mkdir()
        (root / v / "data.bin").write_bytes(v.encode() * 3)
    dest = tmp_path / "cache" / "data.bin"
    assert fetch(f"{base}/v1/data.bin", dest).read_bytes() == b"v1v1v1"
    assert fetch(f"{base}/v2/data.bin", dest).read_bytes() == b"v2v2v2"
    # the same URL again is served from the cache (the server no longer has it)
    (root / "v2" / "data.bin").unlink()
    assert fetch(f"{base}/v2/data.bin", dest).read_bytes() == b"v2v2v2"
    # a cached file changed since its download is not trusted for its URL
    dest.write_bytes(b"edited by hand")
    with pytest.raises(DownloadError, match="404"):
        fetch(f"{base}/v2/data.bin", dest)
    assert dest.read_bytes() == b"edited by hand"
    # a file without a download record (placed by hand) is trusted, as before
    (tmp_path / "cache" / ".data.bin.source").unlink()
    assert fetch(f"{base}/v2/data.bin", dest).read_bytes() == b"edited by hand"


def test_fetch_writes_no_file_through_a_link_beside_the_download(server: tuple[str, Path], tmp_path: Path) -> None:
    """The download record is written through no predictable name: a link planted at
    ``.<name>.source.tmp`` in a shared data folder would make fetch overwrite its target."""
    base, root = server
    (root / "blob.bin").write_bytes(b"payload")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / ".blob.bin.source.tmp").symlink_to(victim)
    dest = fetch(f"{base}/blob.bin", cache / "blob.bin")
    assert dest.read_bytes() == b"payload"
    assert victim.read_text() == "keep me"
    # the record was written and serves the same URL from the cache
    (root / "blob.bin").unlink()
    assert fetch(f"{base}/blob.bin", cache / "blob.bin").read_bytes() == b"payload"
