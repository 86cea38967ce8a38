"""The store on S3 (moto's local server): one storage_options dict, conditional-write commits.

Every test here talks to a real S3 protocol endpoint started by the ``s3_endpoint`` fixture;
nothing is mocked in-process.
"""

from __future__ import annotations

import dataclasses

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import ConflictError, DataUnavailableError, InvalidArgumentError, NotAStoreError, Store
from modyn_store.core._location import fsspec_options, resolve
from tests.store.test_crash_concurrency import WRITER, _check_store, _expected_text, _replay

pytestmark = pytest.mark.s3


def _objects(uri: str, options: dict[str, str]) -> dict[str, bytes]:
    """Every object under the store's prefix, by key."""
    loc = resolve(uri, options)
    fs = loc.fs
    return {p: fs.cat_file(p) for p in fs.find(loc.root)}


def test_one_options_dict_serves_lance_and_metadata(s3_store: tuple[str, dict[str, str]]) -> None:
    uri, options = s3_store
    store = Store.open(uri, create=True, storage_options=options)
    store.append(pa.table({"ts": [1, 2, 3], "x": [0.5, 1.5, 2.5]}), message="first")
    objs = _objects(uri, options)
    # the metadata files (fsspec) and the Lance tables both went to the endpoint
    assert any(k.endswith("_modyn_store.json") for k in objs)
    assert any("/samples.lance/" in k for k in objs)
    again = Store.open(uri, storage_options=options)
    assert again.version == 1 and again.as_of().to_table(["x"]).column("x").to_pylist() == [0.5, 1.5, 2.5]


def test_missing_bucket_is_not_created(s3_store: tuple[str, dict[str, str]]) -> None:
    uri, options = s3_store
    missing = uri.replace("s3://", "s3://no-such-bucket-")
    with pytest.raises(FileNotFoundError):
        Store.open(missing, create=True, storage_options=options)
    fs = resolve(uri, options).fs
    assert not fs.exists(missing.split("://", 1)[1].split("/", 1)[0])


def test_translation_of_lance_keys() -> None:
    opts = fsspec_options(
        "s3",
        {
            "aws_endpoint": "http://127.0.0.1:1",
            "aws_access_key_id": "AK",
            "aws_secret_access_key": "SK",
            "aws_session_token": "TK",
            "region": "eu-central-1",
            "allow_http": "true",
            "connect_timeout": "500ms",
            "timeout": "2s",
            "client_max_retries": "1",
            "aws_virtual_hosted_style_request": "false",
        },
    )
    assert opts["endpoint_url"] == "http://127.0.0.1:1"
    assert (opts["key"], opts["secret"], opts["token"]) == ("AK", "SK", "TK")
    assert opts["client_kwargs"] == {"region_name": "eu-central-1"}
    cfg = opts["config_kwargs"]
    assert cfg["connect_timeout"] == 0.5 and cfg["read_timeout"] == 2.0
    assert cfg["retries"]["max_attempts"] == 2 and cfg["s3"] == {"addressing_style": "path"}
    with pytest.raises(InvalidArgumentError, match="aws_endpiont"):
        resolve("s3://bucket/store", {"aws_endpiont": "http://127.0.0.1:1"})
    with pytest.raises(InvalidArgumentError, match="timeout"):
        resolve("s3://bucket/store", {"timeout": "soon"})


def test_append_delete_time_travel_tags(s3_store: tuple[str, dict[str, str]]) -> None:
    uri, options = s3_store
    store = Store.open(uri, create=True, storage_options=options)
    store.append({"ts": np.arange(100), "x": np.arange(100) * 1.0})
    store.append({"ts": np.arange(100, 150), "x": np.arange(100, 150) * 1.0})
    store.delete(keys=np.arange(0, 100, 2))
    store.tag("before-more")
    store.append({"ts": np.arange(150, 160), "x": np.arange(150, 160) * 1.0})
    reader = Store.open(uri, storage_options=options)
    assert [r.op for r in reader.log()] == ["append", "append", "delete", "tag", "append"]
    assert reader.as_of(1).count() == 100
    assert reader.as_of(2).count() == 150
    assert reader.as_of(3).count() == 100
    assert reader.as_of("before-more").count() == 100
    assert reader.as_of().count() == 110
    assert reader.diff(2, 3).deleted.tolist() == list(range(0, 100, 2))
    delta = reader.delta(3, 5)
    assert delta.inserted.column("key").to_pylist() == list(range(150, 160))


def test_row_reader_knows_object_storage(s3_store: tuple[str, dict[str, str]], tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Rows on S3 are read by masked scans above a share of the table, local ones by takes
    (``RowReader.local``, used by the training loader's read strategy)."""
    uri, options = s3_store
    for where, opts in ((uri, options), (str(tmp_path / "local"), None), (f"memory://{tmp_path.name}", None)):
        store = Store.open(where, create=True, storage_options=opts)
        store.append({"ts": [1, 2, 3]})
        assert store.as_of(None).row_reader().local is (where != uri)


def test_erase_removes_bytes_from_every_object(s3_store: tuple[str, dict[str, str]]) -> None:
    uri, options = s3_store
    rng = np.random.default_rng(7)
    texts = ["secret-" + rng.bytes(24).hex() for _ in range(40)]
    store = Store.open(uri, create=True, storage_options=options)
    store.append({"ts": np.arange(20), "text": texts[:20]})
    store.append({"ts": np.arange(20, 40), "text": texts[20:]})
    store.scores.write("loss", [3, 4, 25], [0.1, 0.2, 0.3])
    store.delete(keys=[3])
    needles = [texts[3].encode(), texts[25].encode()]
    before = _objects(uri, options)
    assert all(any(n in blob for blob in before.values()) for n in needles), "the search must see the bytes"
    report = store.erase([3, 25], reason="user request")
    assert report.keys.tolist() == [3, 25]
    after = _objects(uri, options)
    for n in needles:
        assert not [k for k, blob in after.items() if n in blob], "erased bytes still stored"
    # the others are intact, in every version
    assert texts[4].encode() in b"".join(after.values())
    for v in range(1, store.version + 1):
        assert not {3, 25} & set(store.as_of(v).keys().tolist())
    assert Store.open(uri, storage_options=options).as_of(2).count() == 38
    assert store.scores.as_of(None, "loss").column("key").to_pylist() == [4]


def test_compact_and_vacuum(s3_store: tuple[str, dict[str, str]]) -> None:
    uri, options = s3_store
    store = Store.open(uri, create=True, storage_options=options)
    for i in range(5):
        store.append({"ts": np.arange(i * 10, i * 10 + 10)})
    store.delete(keys=np.arange(0, 10))
    store.append({"ts": [100]})
    store.compact()
    assert [store.as_of(v).count() for v in range(1, 8)] == [10, 20, 30, 40, 50, 40, 41]
    report = store.vacuum(keep_versions=1, dry_run=False)
    assert sorted(report.keys.tolist()) == list(range(10))
    assert store.as_of().count() == 41
    assert sorted(store.as_of(5).unavailable().tolist()) == list(range(10))


def _env(options: dict[str, str], lease: str = "2") -> dict[str, str]:
    env = dict(os.environ)
    env["MODYN_TEST_STORAGE_OPTIONS"] = json.dumps(options)
    env["MODYN_STORE_LEASE_SECONDS"] = lease
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.slow
def test_two_writer_processes_race(s3_store: tuple[str, dict[str, str]]) -> None:
    uri, options = s3_store
    Store.open(uri, create=True, storage_options=options)
    procs = [
        subprocess.Popen(
            [sys.executable, WRITER, uri, str(seed), "5", str(seed * 1_000_000)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(options),
        )
        for seed in (21, 22)
    ]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outputs.append(out.splitlines())
    store = Store.open(uri, storage_options=options)
    versions = sorted(int(l[5:]) for lines in outputs for l in lines if l.startswith("DONE "))
    assert versions == list(range(1, store.version + 1)), "no gap, no duplicate"
    assert [r.version for r in store.log()] == versions
    logged = sorted(int(k.rsplit("/", 1)[-1][:-5]) for k in _objects(uri, options) if "/_log/" in k and k.endswith(".json"))
    # one conditionally created record object per version above the log's last checkpoint
    assert logged == list(range(store.version - len(logged) + 1, store.version + 1)) and logged
    expected: set[int] = set()
    for lines in outputs:
        expected |= _replay([json.loads(l[6:]) for l in lines if l.startswith("BEGIN ")])[-1]
    table = store.as_of().to_table(["key", "text"])
    keys = table.column("key").to_numpy()
    assert keys.size == np.unique(keys).size and set(keys.tolist()) == expected
    assert table.column("text").to_pylist() == _expected_text(keys)


@pytest.mark.slow
def test_sigkilled_writer_is_recovered(s3_store: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    uri, options = s3_store
    monkeypatch.setenv("MODYN_STORE_LEASE_SECONDS", "2")
    Store.open(uri, create=True, storage_options=options)
    proc = subprocess.Popen(
        [sys.executable, WRITER, uri, "3", "60", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(options),
    )
    # kill it in the middle of a write: after a few commits, right after a BEGIN line
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if sum(l.startswith("DONE ") for l in lines) >= 3 and line.startswith("BEGIN "):
            time.sleep(0.05)
            break
    proc.send_signal(signal.SIGKILL)
    # read on through the same buffered stream (communicate() would drop buffered lines)
    with proc.stdout, proc.stderr:  # type: ignore[union-attr]
        out = proc.stdout.read()
    proc.wait()
    lines += out.splitlines()
    assert proc.returncode == -signal.SIGKILL
    # the dead writer still "holds" the lease: the next writer waits it out, takes it over and
    # rolls the interrupted write back, just like a local recovery
    started = time.monotonic()
    Store.open(uri, storage_options=options, lock_timeout=30).compact()
    assert time.monotonic() - started < 20
    _check_store(uri, lines, options)


def test_writer_that_lost_its_lease_cannot_commit(
    s3_store: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, options = s3_store
    # a lease short enough for a quick test, long enough that the other writer's renewals (a PUT
    # every quarter lease, slow on a loaded machine) keep it within half a lease while it commits
    monkeypatch.setenv("MODYN_STORE_LEASE_SECONDS", "3")
    slow = Store.open(uri, create=True, storage_options=options)
    slow.append({"ts": [0]})
    fast = Store.open(uri, storage_options=options, lock_timeout=20)
    with pytest.raises(ConflictError, match="lost the store lease"):
        with slow.transaction("append") as txn:
            txn.append("notes", pa.table({"text": ["from the paused writer"]}))
            slow._lock._stop.set()  # the writer is paused: no renewals
            time.sleep(3.3)  # past its lease
            # another writer (a thread: one of this thread's own would be a nested write) takes
            # the lease over and rolls the paused write back
            done: list[int] = []
            other = threading.Thread(target=lambda: done.append(fast.append({"ts": [1]}).version))
            other.start()
            other.join(30)
            assert done == [2]
    # the paused writer neither committed nor deleted the other writer's rows
    check = Store.open(uri, storage_options=options)
    assert [r.version for r in check.log()] == [1, 2]
    assert check.as_of().count() == 2
    notes = check.read_table("notes")
    assert notes is None or notes.num_rows == 0


def test_a_committed_version_is_never_committed_again(s3_store: tuple[str, dict[str, str]]) -> None:
    uri, options = s3_store
    store = Store.open(uri, create=True, storage_options=options)
    store.append({"ts": [0]})
    holder = Store.open(uri, storage_options=options)
    with holder._lock:
        # the live lease holder excludes other writers (of another thread: this thread's own
        # write would be a nested one) ...
        refused: list[BaseException] = []

        def write() -> None:
            try:
                Store.open(uri, storage_options=options, lock_timeout=0.5).append({"ts": [1]})
            except ConflictError as exc:
                refused.append(exc)

        other = threading.Thread(target=write)
        other.start()
        other.join(30)
        assert len(refused) == 1 and "held the store lease" in str(refused[0])
    second = store.append({"ts": [1]}, message="first")
    # ... and a writer that wrongly believes it holds the lease cannot commit version 2 again:
    # the record object is created with If-None-Match
    stale = Store.open(uri, storage_options=options)
    forged = dataclasses.replace(second, message="forged")
    with pytest.raises(ConflictError, match="committed store version 2"):
        stale._log.commit(forged)
    check = Store.open(uri, storage_options=options)
    assert [r.message for r in check.log()] == ["", "first"] and check.version == 2


def _blackhole() -> tuple[socket.socket, str]:
    """A TCP endpoint that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_dead_endpoint_fails_fast_and_clearly(kind: str) -> None:
    if kind == "refused":
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
        probe.close()
        sock: Any = None
    else:
        sock, endpoint = _blackhole()
    options = {
        "aws_endpoint": endpoint,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_region": "us-east-1",
        "allow_http": "true",
        "connect_timeout": "1s",
        "timeout": "1s",
        "client_max_retries": "1",
    }
    started = time.monotonic()
    try:
        with pytest.raises(Exception) as info:
            Store.open("s3://dead-bucket/store", create=True, storage_options=options)
    finally:
        if sock is not None:
            sock.close()
    assert time.monotonic() - started < 30
    from modyn_store.core.errors import StorageUnavailableError

    assert isinstance(info.value, StorageUnavailableError)
    assert endpoint in str(info.value)


def test_missing_credentials_are_a_typed_error_naming_storage_options(
    s3_store: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No key in the options and none in the environment: botocore cannot sign the first request.
    That is refused as bad ``storage_options`` (not botocore's own ``NoCredentialsError``), and
    nothing is written."""
    from tests.conftest import forget_aws_credentials

    uri, options = s3_store
    forget_aws_credentials(monkeypatch, tmp_path)
    without = {k: v for k, v in options.items() if k not in ("aws_access_key_id", "aws_secret_access_key")}
    for create in (True, False):
        with pytest.raises(InvalidArgumentError, match="aws_access_key_id and aws_secret_access_key") as info:
            Store.open(uri, create=create, storage_options=without)
        assert info.value.name == "storage_options" and "cannot be read" in str(info.value)
    assert _objects(uri, options) == {}


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"aws_region": "us east 1"}, "storage_options['aws_region']"),
        ({"region": "12345"}, "storage_options['region']"),
        ({"aws_region": "-us-east-1"}, "storage_options['aws_region']"),
        ({"aws_secret_access_key": None}, "storage_options['aws_access_key_id']"),  # key without secret
        ({"aws_access_key_id": None}, "storage_options['aws_secret_access_key']"),  # secret without key
    ],
)
def test_malformed_region_and_half_credentials_are_refused_before_any_request(
    s3_store: tuple[str, dict[str, str]], given: dict[str, str | None], named: str
) -> None:
    uri, options = s3_store
    opts = {k: v for k, v in options.items() if k != "aws_region" or "region" not in given}
    opts = {k: v for k, v in {**opts, **given}.items() if v is not None}
    with pytest.raises(InvalidArgumentError) as info:
        Store.open(uri, create=True, storage_options=opts)
    assert info.value.name == named
    assert "testing" not in str(info.value)  # a credential is never shown
    assert _objects(uri, options) == {}


def test_a_prefix_that_holds_objects_is_not_made_a_store(s3_store: tuple[str, dict[str, str]]) -> None:
    """As a non-empty local folder: a prefix with other objects (user files, or a store created
    below it earlier, which this store's compact, vacuum and erase could then remove) is refused,
    and nothing is written there."""
    import boto3

    uri, options = s3_store
    bucket = uri[len("s3://"):].split("/", 1)[0]
    inner = Store.open(f"{uri}/inner", create=True, storage_options=options)
    inner.append({"ts": [1, 2]})
    s3 = boto3.client("s3", endpoint_url=options["aws_endpoint"], aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    s3.put_object(Bucket=bucket, Key="files/rows.csv", Body=b"ts\n1\n")
    before = _objects(f"s3://{bucket}", options)
    for outer in (uri, f"{uri}/", f"s3://{bucket}", f"s3://{bucket}/files"):
        with pytest.raises(NotAStoreError, match="not empty but holds no store"):
            Store.open(outer, create=True, storage_options=options)
    assert _objects(f"s3://{bucket}", options) == before
    assert Store.open(f"{uri}/inner", storage_options=options).as_of().keys().tolist() == [0, 1]
    # an empty prefix next to them is still a new store
    assert Store.open(f"s3://{bucket}/fresh", create=True, storage_options=options).version == 0


def test_a_writer_whose_lease_object_was_removed_cannot_commit(
    s3_store: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease object is deleted under a writer (by hand, a lifecycle rule): another writer
    creates it at once and rolls the first one's pending rows back. The first writer, whose
    last renewal is still recent, must neither write on nor commit (its pending rows are gone,
    and rows it wrote now would be named by no intent, so the next writer's version would take
    them up): it asks the store before each table write and at the commit point, and gets
    ``ConflictError``; nothing of its write is visible and the store verifies clean."""
    from modyn_store.core.verify import verify

    uri, options = s3_store
    monkeypatch.setenv("MODYN_STORE_LEASE_SECONDS", "30")
    first = Store.open(uri, create=True, storage_options=options)
    with first.transaction("notes") as txn:
        txn.append("notes", pa.table({"text": ["committed"]}))
    other = Store.open(uri, storage_options=options, lock_timeout=5)
    fs = resolve(uri, options).fs
    with pytest.raises(ConflictError, match="lost the store lease"):
        with first.transaction("notes") as txn:
            txn.append("notes", pa.table({"text": ["pending"]}))
            fs.rm(first._lock.path)
            # takes the lease, rolls the pending rows back, and commits nothing itself
            assert other.erase([12345], reason="none", missing="ignore").version is None
            txn.append("notes", pa.table({"text": ["pending, after the takeover"]}))
    check = Store.open(uri, storage_options=options)
    assert [r.version for r in check.log()] == [1]
    assert check.read_table("notes").column("text").to_pylist() == ["committed"]
    check.append({"ts": [1]})
    assert check.read_table("notes").column("text").to_pylist() == ["committed"]
    assert verify(uri, deep=True, storage_options=options).ok


_VACUUM_KILLED_BEFORE_PURGE = """
import json, os, signal, sys
from modyn_store import Store
from modyn_store.core import maintenance

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # the vacuum committed; its purge never ran

maintenance._purge = killed
store = Store.open(sys.argv[1], storage_options=json.loads(os.environ["MODYN_TEST_STORAGE_OPTIONS"]))
store.vacuum(keep_versions=1, dry_run=False)
"""


def test_an_older_version_reads_between_a_vacuums_commit_and_its_purge(
    s3_store: tuple[str, dict[str, str]],
) -> None:
    """A vacuum commits (its purged keys are listed) before it removes their rows. A reader in
    another process (no writer recovers on an object store before the next write) finds those
    rows still stored: an older version's keys, count and ``unavailable`` are as after the purge
    (not each purged key twice, read as damage), its streams and deltas skip the purged rows as they
    do after the purge, and the next writer's purge leaves the same answers."""
    from modyn_store.core.verify import verify

    uri, options = s3_store
    store = Store.open(uri, create=True, storage_options=options)
    for start in (0, 10, 20):
        store.append({"key": np.arange(start, start + 10), "ts": np.arange(10)})
    store.delete(keys=[0, 1, 2, 3, 4])
    proc = subprocess.run([sys.executable, "-c", _VACUUM_KILLED_BEFORE_PURGE, uri], env=_env(options, lease="30"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    for recovered in (False, True):  # before and after the next writer finished the purge
        reader = Store.open(uri, storage_options=options)
        assert reader.version == 5 and reader.log()[-1].op == "vacuum"
        old = reader.as_of(3)
        assert old.keys().tolist() == list(range(30)) and old.count() == 30
        assert old.unavailable().tolist() == [0, 1, 2, 3, 4]
        rest = list(range(5, 30))
        assert sorted(old.to_table(["key"], on_unavailable="skip").column("key").to_pylist()) == rest
        assert sorted(np.concatenate(list(old.iter_keys(batch_size=7))).tolist()) == rest
        with pytest.raises(DataUnavailableError):
            old.to_table(["key"])
        assert reader.delta(0, 3, on_unavailable="skip").inserted.column("key").to_pylist() == rest
        assert reader.as_of().keys().tolist() == list(range(5, 30))
        if not recovered:
            Store.open(uri, storage_options=options, lock_timeout=60).compact()
    assert verify(uri, deep=True, storage_options=options).ok


def test_a_write_nested_through_a_second_handle_on_s3_is_refused_at_once(s3_store: tuple[str, dict[str, str]]) -> None:
    from modyn_store import NestedWriteError

    uri, options = s3_store
    first = Store.open(uri, create=True, storage_options=options, lock_timeout=5.0)
    first.append(pa.table({"ts": [1], "x": [1.0]}))
    second = Store.open(uri, storage_options=options, lock_timeout=5.0)
    with first.transaction("note") as txn:
        txn.append("notes", pa.table({"text": ["x"]}))
        start = time.monotonic()
        with pytest.raises(NestedWriteError, match="through another handle of the store"):
            second.append(pa.table({"ts": [2], "x": [2.0]}))
        assert time.monotonic() - start < 2.0  # not after the lock's timeout
    assert second.append(pa.table({"ts": [2], "x": [2.0]})).version == 3


def test_stores_at_one_path_of_two_endpoints_are_two_stores_to_the_writer_gate() -> None:
    """A thread inside a write of ``s3://bucket/store`` on one server may write the store at the
    same path on another server (a replica): no write of one could wait for the other's lock."""
    from modyn_store import NestedWriteError
    from modyn_store.core._lease import LeaseLock

    def lock(endpoint: str) -> LeaseLock:
        return LeaseLock(resolve("s3://bucket/store", {"aws_endpoint": endpoint, "aws_region": "us-east-1"}), 1.0)

    here, there, here_again = lock("https://a.example"), lock("https://b.example"), lock("https://a.example")
    assert here._local.acquire(1.0)  # the thread gate alone: no request to either server
    try:
        assert there._local.acquire(0.1)
        there._local.release()
        with pytest.raises(NestedWriteError):
            here_again._local.acquire(0.1)
    finally:
        here._local.release()
