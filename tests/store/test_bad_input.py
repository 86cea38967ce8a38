"""Bad input gets a typed error naming the problem and leaves the store exactly as it was."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import (
    DuplicateKeyError,
    FormatVersionError,
    InvalidArgumentError,
    InvalidFilterError,
    InvalidNameError,
    ModynStoreError,
    NotAStoreError,
    SchemaMismatchError,
    Store,
    UnknownKeyError,
    UnknownVersionError,
)


def _state(store: Store) -> Any:
    snap = store.as_of()
    return (
        store.version,
        [(r.version, r.op, r.inserted, r.deleted) for r in store.log()],
        snap.keys().tolist(),
        snap.to_table().to_pydict(),
        store.tags(),
        {n: store.scores.as_of(None, n).to_pydict() for n in store.scores.names()},
    )


@pytest.fixture
def store(store_uri: str) -> Store:
    s = Store.open(store_uri, create=True)
    s.append(pa.table({"key": [1, 2, 3], "ts": [10, 20, 30], "label": [0, 1, 0], "x": [0.1, 0.2, 0.3]}))
    s.scores.write("loss", [1, 2], [0.5, 0.25])
    s.tag("base")
    return s


CASES: list[tuple[str, type[Exception], str, Callable[[Store], Any]]] = [
    ("schema: extra column", SchemaMismatchError, "unexpected columns", lambda s: s.append(pa.table({"key": [9], "ts": [1], "label": [0], "x": [1.0], "y": [2]}))),
    ("schema: wrong type", SchemaMismatchError, "column 'x' is string", lambda s: s.append(pa.table({"key": [9], "ts": [1], "label": [0], "x": ["a"]}))),
    ("schema: missing column", SchemaMismatchError, "missing columns", lambda s: s.append(pa.table({"key": [9], "ts": [1], "label": [0]}))),
    ("schema: no event time", SchemaMismatchError, "event-time", lambda s: s.append(pa.table({"key": [9], "label": [0], "x": [1.0]}))),
    ("schema: reserved name", SchemaMismatchError, "reserved", lambda s: s.append(pa.table({"key": [9], "ts": [1], "label": [0], "x": [1.0], "_version": [5]}))),
    ("duplicate keys in batch", DuplicateKeyError, "within the appended data", lambda s: s.append(pa.table({"key": [7, 7], "ts": [1, 2], "label": [0, 0], "x": [1.0, 2.0]}))),
    ("duplicate key vs store", DuplicateKeyError, "already exist", lambda s: s.append(pa.table({"key": [8, 2], "ts": [1, 2], "label": [0, 0], "x": [1.0, 2.0]}))),
    ("duplicate key vs store (stream)", DuplicateKeyError, "already exist", lambda s: s.append(pa.table({"key": [8, 2], "ts": [1, 2], "label": [0, 0], "x": [1.0, 2.0]}).to_reader())),
    ("null keys", InvalidArgumentError, "null keys", lambda s: s.append(pa.table({"key": pa.array([None, 9], pa.int64()), "ts": [1, 2], "label": [0, 0], "x": [1.0, 2.0]}))),
    ("float keys", SchemaMismatchError, "keys must be integers", lambda s: s.append(pa.table({"key": [1.5], "ts": [1], "label": [0], "x": [1.0]}))),
    ("empty append", InvalidArgumentError, "at least one row", lambda s: s.append(pa.table({"key": pa.array([], pa.int64()), "ts": pa.array([], pa.int64()), "label": pa.array([], pa.int64()), "x": pa.array([], pa.float64())}))),
    ("bad data type", InvalidArgumentError, "pyarrow Table", lambda s: s.append([1, 2, 3])),
    ("unknown keys on delete", UnknownKeyError, "not live", lambda s: s.delete(keys=[1, 99])),
    ("delete of no keys", InvalidArgumentError, "at least one key", lambda s: s.delete(keys=[])),
    ("delete keys and where", InvalidArgumentError, "exactly one", lambda s: s.delete(keys=[1], where="x > 0")),
    ("invalid filter", InvalidFilterError, "invalid filter", lambda s: s.delete(where="x >>> ")),
    ("filter on unknown column", InvalidFilterError, "invalid filter", lambda s: s.as_of().to_table(filter="nope = 1")),
    ("NaN score", InvalidArgumentError, "NaN or inf", lambda s: s.scores.write("loss", [1, 2], [0.1, float("nan")])),
    ("inf score", InvalidArgumentError, "NaN or inf", lambda s: s.scores.write("loss", [1], [float("inf")])),
    ("score for unknown key", UnknownKeyError, "not live", lambda s: s.scores.write("loss", [42], [0.1])),
    ("score shape change", SchemaMismatchError, "holds values of type", lambda s: s.scores.write("loss", [1], [[0.1, 0.2]])),
    ("unknown version", UnknownVersionError, "does not exist", lambda s: s.as_of(999)),
    ("negative version", UnknownVersionError, "does not exist", lambda s: s.as_of(-1)),
    ("unknown tag", UnknownVersionError, "unknown tag", lambda s: s.as_of("nope")),
    ("invalid tag name", InvalidNameError, "tag", lambda s: s.tag("../escape")),
    ("numeric tag name", InvalidNameError, "a letter", lambda s: s.tag("12")),
    ("duplicate tag", InvalidArgumentError, "already names", lambda s: s.tag("base")),
    ("invalid score name", InvalidNameError, "score", lambda s: s.scores.write("../x", [1], [0.1])),
    ("unknown columns", InvalidArgumentError, "columns of the store", lambda s: s.as_of().to_table(["nope"])),
    ("erase without reason", InvalidArgumentError, "reason", lambda s: s.erase([1], reason="")),
    ("vacuum keep 0", InvalidArgumentError, "keep_versions", lambda s: s.vacuum(keep_versions=0)),
    ("aux path traversal", InvalidArgumentError, "relative", lambda s: s.path("../../etc/passwd")),
    ("bad version type", InvalidArgumentError, "version number", lambda s: s.as_of(1.5)),
    # a filter that parses but fails on the rows it reads is the caller's error, not damage
    ("filter fails on rows: to_table", InvalidFilterError, "invalid filter", lambda s: s.as_of().to_table(filter="key / 0 > 1")),
    ("filter fails on rows: to_batches", InvalidFilterError, "invalid filter", lambda s: list(s.as_of().to_batches(filter="key / 0 > 1"))),
    ("filter fails on rows: delete", InvalidFilterError, "invalid filter", lambda s: s.delete(where="label / 0 = 1")),
    ("filter fails on rows: read_table", InvalidFilterError, "invalid filter", lambda s: s.read_table("tags", filter="_version / 0 > 1")),
    ("a column read twice", InvalidArgumentError, "each column named once", lambda s: s.as_of().to_table(["x", "x"])),
    ("a column read twice: delta", InvalidArgumentError, "each column named once", lambda s: s.delta(0, 1, columns=["x", "x"])),
    ("batch above Lance's bound", InvalidArgumentError, "batch_size", lambda s: list(s.as_of().to_batches(batch_size=2**40))),
    ("batch beyond int64", InvalidArgumentError, "batch_size", lambda s: list(s.as_of().iter_keys(batch_size=2**64))),
    ("score batch above Lance's bound", InvalidArgumentError, "batch_size", lambda s: list(s.scores.batches(None, "loss", batch_size=2**32))),
    ("empty column name", SchemaMismatchError, "non-empty", lambda s: s.append(pa.table({"key": [9], "ts": [1], "label": [0], "x": [1.0], "": [1]}))),
    ("dotted column name", SchemaMismatchError, "no '.'", lambda s: s.append(pa.table({"key": [9], "ts": [1], "label": [0], "x": [1.0], "a.b": [1]}))),
    ("backtick in a column name", SchemaMismatchError, "no '`'", lambda s: s.append(pa.table({"key": [9], "ts": [1], "label": [0], "x": [1.0], "a`b": [1]}))),
    ("a column named twice", SchemaMismatchError, "more than once", lambda s: s.append(pa.Table.from_arrays([pa.array([9]), pa.array([1]), pa.array([1]), pa.array([0]), pa.array([1.0])], names=["key", "ts", "ts", "label", "x"]))),
    ("ragged columns", SchemaMismatchError, "Arrow columns", lambda s: s.append({"key": [9, 10], "ts": [1], "label": [0], "x": [1.0]})),
    ("vector beyond float32", InvalidArgumentError, "float32", lambda s: s.scores.write("emb", [1], np.full((1, 2), 1e300))),
    ("vector of width 0", InvalidArgumentError, "d >= 1", lambda s: s.scores.write("emb", [1], np.zeros((1, 0)))),
    ("ragged vector scores", InvalidArgumentError, "values", lambda s: s.scores.write("emb", [1, 2], [[0.1, 0.2], [0.3]])),
    ("null scores (Arrow)", InvalidArgumentError, "1 null scores", lambda s: s.scores.write("loss", [1, 2], pa.array([0.5, None]))),
    ("masked scores", InvalidArgumentError, "masked", lambda s: s.scores.write("loss", [1, 2], np.ma.array([0.5, 0.7], mask=[False, True]))),
    ("masked score keys", InvalidArgumentError, "masked", lambda s: s.scores.write("loss", np.ma.array([1, 3], mask=[False, True]), [0.5, 0.7])),
    ("ragged score keys", InvalidArgumentError, "keys", lambda s: s.scores.write("loss", [[1], [2, 3]], [0.5, 0.7])),
    ("masked keys on delete", InvalidArgumentError, "masked", lambda s: s.delete(keys=np.ma.array([1, 3], mask=[False, True]))),
    ("masked keys on erase", InvalidArgumentError, "masked", lambda s: s.erase(np.ma.array([1, 3], mask=[False, True]), reason="request")),
    ("extension table: bad name", InvalidNameError, "table", lambda s: s.append(pa.table({"key": [9], "ts": [1], "label": [0], "x": [1.0]}), tables={"../x": pa.table({"a": [1]})})),
    ("extension table: not a table", InvalidArgumentError, "pyarrow Table", lambda s: s.append(pa.table({"key": [9], "ts": [1], "label": [0], "x": [1.0]}), tables={"ext": {"a": [1]}})),
    # a new extension table would hold a column of type null for good, refusing every later value in it
    ("extension table: column of type null", SchemaMismatchError, "column 'c' of the new extension table 'ext' has type null", lambda s: s.append(pa.table({"key": [9], "ts": [1], "label": [0], "x": [1.0]}), tables={"ext": pa.table({"key": [9], "c": pa.nulls(1)})})),
    ("extension table: list column of type null", SchemaMismatchError, "has type list<item: null>", lambda s: s.append(pa.table({"key": [9], "ts": [1], "label": [0], "x": [1.0]}), tables={"ext": pa.table({"key": [9], "c": pa.array([[]])})})),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_leaves_store_unchanged(store: Store, case: tuple[str, type[Exception], str, Callable[[Store], Any]]) -> None:
    _, error, words, call = case
    before = _state(store)
    with pytest.raises(error, match=words) as info:
        call(store)
    assert isinstance(info.value, ModynStoreError)
    assert _state(store) == before
    # and a reopened store agrees
    assert _state(Store.open(store.uri)) == before


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(NotAStoreError, match="not a modyn-store store"):
        Store.open(str(tmp_path / "nothing"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("hello")
    with pytest.raises(NotAStoreError, match="not empty"):
        Store.open(str(tmp_path / "other"), create=True)
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["file.txt"]


def test_newer_format(tmp_path: Path) -> None:
    root = tmp_path / "s"
    Store.open(str(root), create=True)
    (root / "_modyn_store.json").write_text(json.dumps({"format": "modyn-store", "format_version": 99}))
    with pytest.raises(FormatVersionError, match="format 99"):
        Store.open(str(root))


def test_unsupported_uri_scheme() -> None:
    with pytest.raises(InvalidArgumentError, match="uri"):
        Store.open("ftp://host/x", create=True)


def test_delete_missing_ignore_counts(store: Store) -> None:
    rec = store.delete(keys=[1, 99, 100], missing="ignore")
    assert rec.deleted == 1 and rec.details["ignored"] == 2
    assert store.as_of().keys().tolist() == [2, 3]
    assert np.array_equal(store.as_of(1).keys(), [1, 2, 3])


def test_columns_the_store_cannot_hold_are_refused_before_the_first_append(store_uri: str) -> None:
    """An empty name broke every later read; a union column failed deep inside Lance."""
    store = Store.open(store_uri, create=True)
    union = pa.UnionArray.from_sparse(pa.array([0, 1], pa.int8()), [pa.array([1, 2]), pa.array(["a", "b"])])
    for data, words in ((pa.table({"ts": [1, 2], "": [10, 20]}), "non-empty"), (pa.table({"ts": [1, 2], "u": union}), "'u' has type")):
        with pytest.raises(SchemaMismatchError, match=words):
            store.append(data)
        assert store.version == 0 and store.schema is None
    with pytest.raises(InvalidArgumentError, match="event times that fit int64"):  # read back as -1
        store.append(pa.table({"ts": pa.array([2, 2**64 - 1], pa.uint64())}))
    assert store.version == 0 and store.schema is None
    tick = pa.table({"ts": [1, 2], "a`b": [10, 20]})  # stored, then every read, erase and compact failed
    with pytest.raises(SchemaMismatchError, match="no '`'"):
        store.append(tick)
    assert store.version == 0 and store.schema is None
    nested = pa.table({"ts": [1, 2], "st": pa.array([{"a.b": 1}, {"a.b": 2}])})  # a dot inside a struct is a field name
    store.append(nested)
    assert store.as_of().to_table().column("st").to_pylist() == [{"a.b": 1}, {"a.b": 2}]


def test_bad_store_options_are_refused_at_open(tmp_path: Path) -> None:
    for timeout in (float("nan"), float("inf"), 1e30, -1, "10"):
        with pytest.raises(InvalidArgumentError, match="lock_timeout"):
            Store.open(str(tmp_path / "s"), create=True, lock_timeout=timeout)  # type: ignore[arg-type]
    for create in ("yes", 1, None):
        with pytest.raises(InvalidArgumentError, match="create"):
            Store.open(str(tmp_path / "s"), create=create)  # type: ignore[arg-type]
    assert not (tmp_path / "s").exists()
    with pytest.raises(InvalidArgumentError, match="uri"):
        Store.open(str(tmp_path / "a\x00b"), create=True)


def test_extension_rows_of_another_schema_are_refused_before_they_are_written(store: Store) -> None:
    with store.transaction("note") as t:
        t.append("notes", pa.table({"a": [1]}))
    before = _state(store), store.read_table("notes").to_pydict()
    for rows, words in ((pa.table({"b": ["x"]}), "no such column"), (pa.table({"a": ["x"]}), "'a' is string")):
        with pytest.raises(SchemaMismatchError, match=words):
            with store.transaction("note") as t:
                t.append("notes", rows)
        with pytest.raises(SchemaMismatchError, match=words):
            store.append(pa.table({"key": [9], "ts": [1], "label": [0], "x": [1.0]}), tables={"notes": rows})
    assert (_state(store), store.read_table("notes").to_pydict()) == before
    with store.transaction("note") as t:  # columns it lacks are nulls
        t.append("notes", pa.table({"a": pa.array([2], pa.int64())}))
    assert store.read_table("notes").column("a").to_pylist() == [1, 2]


def test_refused_rows_leave_no_bytes_on_disk(tmp_path: Path) -> None:
    """A streamed append is written as it comes; when a key clashes it is rolled back, and the
    files holding its rows are removed, not only dropped from the latest manifest."""
    root = tmp_path / "s"
    store = Store.open(str(root), create=True)
    store.append(pa.table({"key": [1, 2], "ts": [1, 2], "s": ["a", "b"]}))
    refused = pa.table({"key": [7, 1], "ts": [3, 4], "s": ["REFUSED-ROW", "REFUSED-ROW"]})
    with pytest.raises(DuplicateKeyError):
        store.append(refused.to_reader())
    assert store.version == 1 and store.as_of().keys().tolist() == [1, 2]
    assert not [p for p in root.rglob("*") if p.is_file() and b"REFUSED-ROW" in p.read_bytes()]
    store.append(pa.table({"key": [7], "ts": [3], "s": ["c"]}))
    assert store.as_of().to_table().column("s").to_pylist() == ["a", "b", "c"]


@pytest.mark.ray  # (CI runs it in its Ray step, where Ray is installed)
@pytest.mark.parametrize(("name", "value"), [("concurrency", 0), ("concurrency", -2), ("override_num_blocks", 0),
                                             ("override_num_blocks", True), ("concurrency", 1.5)])
def test_ray_read_sizes_are_checked_before_ray_runs(tmp_path: Path, name: str, value: Any) -> None:
    """``to_ray(concurrency=0)`` reached Ray Data, which raised a bare ValueError about ``size``;
    ``override_num_blocks=0`` was passed on unchecked."""
    pytest.importorskip("ray")
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": [1, 2, 3]}))
    with pytest.raises(InvalidArgumentError, match=name):
        store.as_of().to_ray(["ts"], **{name: value})


@pytest.mark.ray  # (CI runs it in its Ray step, where Ray is installed)
@pytest.mark.parametrize("value", ["num_cpus=1", {"num_cpus": -1}, {"no_such_option": 1}, {"memory": "2GB"},
                                   {1: 2}, ["num_cpus"]])
def test_ray_task_options_are_checked_before_ray_runs(tmp_path: Path, value: Any) -> None:
    """``ray_remote_args`` that Ray refuses failed only when the Dataset was consumed, inside a
    read task (a ``ValueError`` wrapped by Ray), or up front with an ``AttributeError``."""
    pytest.importorskip("ray")
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": [1, 2, 3]}))
    with pytest.raises(InvalidArgumentError, match="ray_remote_args") as info:
        store.as_of().to_ray(["ts"], ray_remote_args=value)
    assert info.value.name == "ray_remote_args"


@pytest.mark.parametrize("values", [np.array([1, 2, 2**53 + 1], np.int64), np.array([0, 1, 2**64 - 1], np.uint64),
                                    np.array([-(2**63), 0, 1], np.int64)])
def test_integer_scores_beyond_2_53_are_refused_not_rounded(tmp_path: Path, values: np.ndarray) -> None:
    """Scores are stored as float64: the integer 2**53 + 1 was read back as 2**53, and two
    scores that differed came back equal (a ranking by score then picked by key)."""
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": [1, 2, 3]}))
    version = store.version
    with pytest.raises(InvalidArgumentError, match="beyond 2\\*\\*53") as info:
        store.scores.write("s", np.arange(3), values)
    assert info.value.name == "values" and store.version == version
    store.scores.write("s", np.arange(3), np.array([1, 2, 2**53], np.int64))  # exact: accepted
    assert store.scores.as_of(None, "s").column("value").to_pylist()[-1] == 2.0**53


def test_integer_vector_components_beyond_2_24_are_refused_not_rounded(tmp_path: Path) -> None:
    """Vector scores are stored as float32: the integer 2**24 + 1 came back as 2**24."""
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": [1, 2]}))
    with pytest.raises(InvalidArgumentError, match="vector components beyond 2\\*\\*24"):
        store.scores.write("v", np.arange(2), np.array([[1, 2**24 + 1], [0, 0]], np.int64))
    store.scores.write("v", np.arange(2), np.array([[1, 2**24], [0, -(2**24)]], np.int64))
    assert store.scores.as_of(None, "v").column("value").to_pylist()[0] == [1.0, 2.0**24]
