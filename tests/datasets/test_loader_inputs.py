"""Downloads cut short and damaged or malformed benchmark files give typed errors, never wrong rows."""

from __future__ import annotations

import gzip
import io
import json
import os
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modyn_store.app.datasets import DownloadError, fetch
from modyn_store.app.datasets.cloc import load_cloc
from modyn_store.app.datasets.criteo import iter_criteo_day, load_criteo
from modyn_store.app.datasets.wildtime import load_arxiv, load_huffpost, load_yearbook
from modyn_store.core.errors import InvalidArgumentError

BODY = b"0123456789" * 10_000


@pytest.fixture()
def cut_short() -> Iterator[str]:
    """A loopback server announcing ``len(BODY)`` bytes and closing after 40 % of them."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65_536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY))
                conn.sendall(BODY[: len(BODY) * 4 // 10])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/day_0.gz"
    finally:
        stop.set()
        thread.join()
        sock.close()


def test_a_download_cut_short_is_an_error_and_leaves_nothing(cut_short: str, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "day_0.gz"
    with pytest.raises(DownloadError, match="40000 of 100000 bytes"):
        fetch(cut_short, dest)
    assert list(dest.parent.iterdir()) == []


def test_a_truncated_criteo_day_names_the_file(tmp_path: Path) -> None:
    line = "1\t" + "\t".join(["5"] * 13) + "\t" + "\t".join(["68fd1e64"] * 26) + "\n"
    raw = gzip.compress((line * 2000).encode())
    f = tmp_path / "day_0.gz"
    f.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InvalidArgumentError, match="fetch it again"):
        list(iter_criteo_day(f))
    f.write_bytes(gzip.compress(b"1\t2\n"))
    with pytest.raises(InvalidArgumentError, match="Expected 40 columns"):
        load_criteo(f)
    with pytest.raises(InvalidArgumentError, match="max_rows"):
        list(iter_criteo_day(f, max_rows=-1))


def _png() -> bytes:
    from PIL import Image

    b = io.BytesIO()
    Image.new("L", (4, 4), 128).save(b, "PNG")
    return b.getvalue()


def test_a_damaged_yearbook_archive_or_portrait_is_a_typed_error(tmp_path: Path) -> None:
    archive = tmp_path / "yb.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for k in range(40):
            data = _png() + os.urandom(2000)
            info = tarfile.TarInfo(f"F/19{k + 10}_{k}.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = archive.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InvalidArgumentError, match="complete, readable archive"):
        load_yearbook(cut)
    folder = tmp_path / "faces" / "M"
    folder.mkdir(parents=True)
    (folder / "1950_x.png").write_bytes(b"not a png")
    with pytest.raises(InvalidArgumentError, match="readable PNG"):
        load_yearbook(tmp_path / "faces")


@pytest.mark.parametrize("line", [
    b'{"headline": "a", "date": "2020-01-02"}',
    b'{"headline": "a", "category": "X", "date": "Jan 2 2020"}',
    b'{"headline": "caf\xe9", "category": "X", "date": "2020-01-02"}',
    b'[1, 2]',
])
def test_malformed_huffpost_lines_are_typed_errors(tmp_path: Path, line: bytes) -> None:
    f = tmp_path / "news.json"
    f.write_bytes(b'{"headline": "ok", "category": "Y", "date": "2020-01-01"}\n' + line + b"\n")
    with pytest.raises(InvalidArgumentError, match="news.json:2"):
        load_huffpost(f)


@pytest.mark.parametrize("rec", [
    {"id": "1", "title": "t", "categories": "cs.LG", "versions": [{"created": "not a date"}]},
    {"id": "1", "title": "t", "categories": "", "versions": [{"created": "Mon, 2 Apr 2007 19:18:42 GMT"}]},
    {"id": "1", "title": "t", "versions": [{"created": "Mon, 2 Apr 2007 19:18:42 GMT"}]},
])
def test_malformed_arxiv_records_are_typed_errors(tmp_path: Path, rec: dict) -> None:
    f = tmp_path / "arxiv.json"
    f.write_text(json.dumps(rec) + "\n")
    with pytest.raises(InvalidArgumentError, match="arxiv.json:1"):
        load_arxiv(f)


def test_an_arxiv_date_without_a_zone_is_utc_whatever_the_machine_zone(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "arxiv.json"
    f.write_text(json.dumps({"id": "1", "title": "t", "categories": "cs.LG",
                             "versions": [{"created": "Mon, 2 Apr 2007 19:18:42"}]}) + "\n")
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        ts = load_arxiv(f).column("ts").cast("int64").to_pylist()
    finally:
        monkeypatch.undo()
        time.tzset()
    assert ts == [1175541522]  # 2007-04-02T19:18:42Z


def test_cloc_labels_with_fractions_are_refused_not_truncated(tmp_path: Path) -> None:
    np.save(tmp_path / "features.npy", np.zeros((2, 3), np.float32))
    np.save(tmp_path / "labels.npy", np.array([1.7, 0.2]))
    np.save(tmp_path / "time.npy", np.array([5.5, 1.0]))
    with pytest.raises(InvalidArgumentError, match="whole numbers"):
        load_cloc(tmp_path)
    np.save(tmp_path / "labels.npy", np.array([1.0, 0.0]))
    t = load_cloc(tmp_path, time_origin=0)
    assert t.column("label").to_pylist() == [0, 1] and t.column("ts").cast("int64").to_pylist() == [1, 5]
    (tmp_path / "time.npy").write_bytes(b"garbage")
    with pytest.raises(InvalidArgumentError, match="time.npy"):
        load_cloc(tmp_path)


def test_a_huge_archive_member_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.tar.gz"
    size = 64 << 20  # zeros: a few kB compressed

    class Zeros(io.RawIOBase):
        def __init__(self) -> None:
            self.left = size

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            n = min(len(b), self.left)
            b[:n] = bytes(n)
            self.left -= n
            return n

    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("F/1950_big.png")
        info.size = size
        tar.addfile(info, io.BufferedReader(Zeros()))
    assert archive.stat().st_size < 1 << 20
    with pytest.raises(InvalidArgumentError, match="at most"):
        load_yearbook(archive)


@pytest.mark.parametrize("name", ["elec2", "noaa_weather", "weather_aus", "acs_employment_ma", "movielens100k",
                                  "reuters21578"])
def test_the_file_of_another_data_set_is_a_typed_error(tmp_path: Path, name: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from modyn_store.app.datasets import load

    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"when": [1, 2], "value": [0.5, 1.5]}), other)
    with pytest.raises(InvalidArgumentError, match="missing"):
        load(name, other)
    (tmp_path / "notes.parquet").write_text("not parquet")
    with pytest.raises(InvalidArgumentError, match="readable Parquet"):
        load(name, tmp_path / "notes.parquet")


def test_a_stalled_download_is_a_download_error(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    done = threading.Event()

    def serve() -> None:
        conn, _ = sock.accept()
        with conn:
            conn.recv(65_536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
            done.wait(10)  # then nothing more: the client times out

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(DownloadError, match="timed out|TimeoutError"):
            fetch(f"http://127.0.0.1:{sock.getsockname()[1]}/f.bin", tmp_path / "f.bin", timeout=0.5)
    finally:
        done.set()
        thread.join()
        sock.close()
    assert list(tmp_path.iterdir()) == []


def test_an_empty_movielens_rating_is_refused_not_read_as_no_click(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from modyn_store.app.datasets import load

    f = tmp_path / "movielens100k.parquet"
    pq.write_table(pa.table({"user_id": [1, 2], "movie_id": [3, 4], "rating": [5, None], "timestamp": [10, 20],
                             "age": [30, 40], "gender": ["F", "M"], "occupation": ["other", "other"]}), f)
    with pytest.raises(InvalidArgumentError, match="empty rows: {'rating': 1}"):
        load("movielens100k", f)


def test_a_constant_warmup_column_keeps_its_units_however_its_mean_rounds() -> None:
    """The mean of 300 copies of 0.422915 is an ulp off the value, so its std came out 1.7e-16
    instead of 0, and every later value of the column was divided by it (0.5 -> 4.6e14)."""
    from modyn_store.app.datasets._encode import feature_vector

    column = np.concatenate([np.full(300, 0.422915), [0.5, 0.6]])
    assert np.full(300, 0.422915).std() > 0  # the rounding this is about
    out = np.asarray(feature_vector(column[:, None], None, standardize=True, warmup=300 / 302).flatten())
    assert np.allclose(out, column - 0.422915, atol=1e-7)
