"""The code examples of the documentation run and show what they claim.

Every ```python block of the documents below runs in a fresh folder, every ```yaml block goes
through the pipeline loader (``load_definition`` + ``parse_pipeline`` / ``parse_grid``), and the
``modyn-store`` command lines of the ```bash blocks and of the README's command list name existing
commands and options. A test is named ``<document>:<n>``, the n-th fenced block of the document
(counting every fence, from 1).

An expression statement whose comment starts with a Python literal claims its value: in
``store.version   # 4: the latest committed version`` the test asserts ``store.version == 4``
(``array([...])`` compares an array's values; ``...`` inside a literal matches anything).

HTML comments on the lines right above a block say how it runs:

- ``<!-- no-run: REASON -->``: not run (network, GPU); every name it imports must exist;
- ``<!-- slow: REASON -->``: only with ``-m slow``;
- ``<!-- ray -->``: on a local Ray cluster (``ray.init(num_cpus=2)``), with ``-m ray``;
- ``<!-- s3 -->``: ``Store.open`` gets the endpoint and credentials of moto's local S3 server;
- ``<!-- given: NAME -->``: the folder (or namespace) is prepared by ``given_NAME`` below, as the
  text around the block describes;
- ``<!-- continues -->``: runs after the block before it, in the same folder and namespace.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import io
import re
import shlex
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tests.pipeline.ray_marks import RAY_MARKS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["docs/pipelines.md", "docs/policies.md", "docs/scale-out.md", "docs/training.md",
        "docs/datasets.md", "docs/ARCHITECTURE.md", "README.md"]
MARKERS = {"no-run", "slow", "ray", "s3", "given", "continues"}


@dataclass(frozen=True)
class Block:
    doc: str
    n: int  # the n-th fenced block of the document, from 1
    lang: str
    code: str
    line: int
    marks: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{Path(self.doc).name}:{self.n}"


def _blocks(doc: str) -> list[Block]:
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = m.group(1), m.group(2) or "plain", i
        j = i + 1
        while not re.match(rf"^{indent}```\s*$", lines[j]):
            j += 1
        marks: dict[str, str] = {}
        k = start - 1
        while k >= 0 and (c := re.match(r"^\s*<!--\s*([\w-]+)\s*(?::\s*(.*?))?\s*-->\s*$", lines[k])):
            marks[c.group(1)] = c.group(2) or ""
            k -= 1
        code = "\n".join(line[len(indent):] for line in lines[start + 1:j]) + "\n"
        out.append(Block(doc, len(out) + 1, lang, code, start + 1, marks))
        i = j + 1
    return out


ALL = [b for d in DOCS for b in _blocks(d)]
BY_ID = {b.id: b for b in ALL}


# -- what a block may assume (<!-- given: NAME -->) ----------------------------------------------
def given_trips_parquet(tmp: Path, ns: dict[str, Any], request: pytest.FixtureRequest) -> None:
    """``trips/*.parquet``: two files of taxi trips (the columns the source mapping names)."""
    import pyarrow.parquet as pq

    (tmp / "trips").mkdir()
    rng = np.random.default_rng(0)
    for part in range(2):
        ids = np.arange(part * 300, (part + 1) * 300)
        pq.write_table(pa.table({
            "trip_id": ids,
            "pickup_time": pa.array(np.datetime64("2024-01-01", "s") + ids * np.timedelta64(20, "m")),
            "payment_type": rng.choice(["card", "cash"], ids.size),
            "distance": rng.random(ids.size), "fare": rng.random(ids.size) * 30,
        }), tmp / "trips" / f"part-{part}.parquet")


def given_store_x64(tmp: Path, ns: dict[str, Any], request: pytest.FixtureRequest) -> None:
    """A store at ``path/to/store``: 2,000 rows in 4 versions, ``x`` 64 floats, ``label`` 0..9."""
    from modyn_store import Store

    store = Store.open(str(tmp / "path" / "to" / "store"), create=True)
    rng = np.random.default_rng(0)
    for v in range(4):
        n = 500
        store.append(pa.table({
            "ts": np.arange(v * n, (v + 1) * n),
            "x": pa.FixedSizeListArray.from_arrays(pa.array(rng.random(n * 64, dtype=np.float32)), 64),
            "label": rng.integers(0, 10, n),
        }))


def given_store_x16(tmp: Path, ns: dict[str, Any], request: pytest.FixtureRequest) -> None:
    """``store``: 42 versions of 50 rows, ``x`` 16 floats, ``label`` 0/1."""
    from modyn_store import Store

    store = Store.open(str(tmp / "store"), create=True)
    rng = np.random.default_rng(0)
    for v in range(42):
        store.append(pa.table({
            "ts": np.arange(v * 50, (v + 1) * 50),
            "x": pa.FixedSizeListArray.from_arrays(pa.array(rng.random(50 * 16, dtype=np.float32)), 16),
            "label": rng.integers(0, 2, 50),
        }))
    ns["store"] = store


def given_real_data(tmp: Path, ns: dict[str, Any], request: pytest.FixtureRequest) -> None:
    """``path/to/data``: the folder of real data files (the test skips without it)."""
    data = request.getfixturevalue("data_dir")
    (tmp / "path" / "to").mkdir(parents=True)
    (tmp / "path" / "to" / "data").symlink_to(data)


# -- running a block and the values its comments claim -------------------------------------------
def _comments(code: str) -> dict[int, str]:
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string.lstrip("#").strip()
    return out


def _claim(comment: str) -> tuple[bool, Any]:
    """``(True, value)`` when ``comment`` starts with a Python literal (``array(...)`` too)."""
    text = comment
    is_array = text.startswith("array(")
    if is_array:
        text = text[len("array("):]
    for end in range(len(text), 0, -1):
        if end < len(text) and not (text[end].isspace() or text[end] in ":;,"):
            continue
        part = text[:end].rstrip()
        if is_array:
            if not part.endswith(")"):
                continue
            part = part[:-1]
        try:
            return True, ("array", ast.literal_eval(part)) if is_array else ast.literal_eval(part)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return False, None


def _matches(claim: Any, value: Any) -> bool:
    if claim is Ellipsis:
        return True
    if isinstance(claim, tuple) and len(claim) == 2 and claim[0] == "array":
        return np.asarray(value).tolist() == claim[1]
    if isinstance(claim, set) and claim == {Ellipsis}:
        return bool(value)
    if isinstance(claim, dict):
        return isinstance(value, dict) and set(value) == set(claim) and all(_matches(claim[k], value[k]) for k in claim)
    if isinstance(claim, (list, tuple)) and Ellipsis not in claim:
        return (isinstance(value, (list, tuple)) and len(value) == len(claim)
                and all(_matches(c, v) for c, v in zip(claim, value)))
    return bool(claim == value)


def _run(block: Block, ns: dict[str, Any]) -> list[str]:
    """Run ``block`` statement by statement in ``ns``; assert every claimed value. Returns the claims."""
    code = block.code
    comments = _comments(code)
    checked = []
    for node in ast.parse(code).body:
        src = ast.get_source_segment(code, node)
        assert src is not None
        where = f"{block.doc}:{block.line + node.lineno}"
        if isinstance(node, ast.Expr):
            value = eval(compile(ast.Expression(node.value), where, "eval"), ns)  # noqa: S307 (our own docs)
            ok, claim = _claim(comments.get(node.end_lineno or node.lineno, ""))
            if ok:
                assert _matches(claim, value), f"{where}: {src} gave {value!r}, the comment claims {claim!r}"
                checked.append(src)
        else:
            exec(compile(ast.Module([node], []), where, "exec"), ns)  # noqa: S102 (our own docs)
    return checked


def _chain(block: Block) -> list[Block]:
    """The block and the blocks it continues, first to last."""
    chain = [block]
    while "continues" in chain[0].marks:
        chain.insert(0, BY_ID[f"{Path(block.doc).name}:{chain[0].n - 1}"])
    return chain


# -- what each block's results must be, beyond the values its comments claim ---------------------
def _readme_store(ns: dict[str, Any], tmp: Path) -> None:
    store = ns["store"]
    assert store.version == 3
    assert [r.op for r in store.log()] == ["append", "delete", "erase"]
    assert store.as_of(2).keys().tolist() == [0]  # the soft delete of key 1 is version 2


def _registry(ns: dict[str, Any], tmp: Path) -> None:
    import policies

    t = ns["t"]
    assert t.clone() == t and t.clone() is not t
    assert policies.get("selection", "loss") is policies.Loss


def _runner_loop(ns: dict[str, Any], tmp: Path) -> None:
    history = ns["history"]
    assert history[0].keys.tolist() == list(range(60))
    assert history[1].keys.tolist() == list(range(60, 120))  # new_data: since the previous cutoff
    assert history[2].keys.tolist() == list(range(180))  # retrain_scope all_data


def _s3(ns: dict[str, Any], tmp: Path) -> None:
    store = ns["store"]
    assert store.uri == "s3://my-bucket/stores/clicks"
    assert store.append(pa.table({"ts": [1, 2], "label": [0, 1]})).version == store.version
    assert store.as_of().count() >= 2


def _ray(ns: dict[str, Any], tmp: Path) -> None:
    from policies import Loss, SelectionContext

    store, result = ns["store"], ns["result"]
    assert ns["ds"].count() == store.as_of(42).count() == 2100
    assert set(result.values) == {"loss", "el2n"}
    single = Loss(ratio=0.1).select(SelectionContext(snapshot=store.as_of(), seed=0,
                                                     computed_scores={"loss": (result.keys, result.values["loss"])}))
    assert ns["train_set"].keys.tolist() == single.keys.tolist()
    assert np.array_equal(ns["train_set"].weights, single.weights)


def _training(ns: dict[str, Any], tmp: Path) -> None:
    assert set(ns["batch"]) == {"key", "weight", "x", "label"}
    assert ns["batch"]["x"].shape[1] == 64
    dl = ns["dl"]
    assert not np.array_equal(dl.order(0), dl.order(1))  # a new order every epoch
    assert ns["result"].record.training_id == "t-0001"


def _weather_aus(ns: dict[str, Any], tmp: Path) -> None:
    table, spec, slices = ns["table"], ns["spec"], np.asarray(ns["slices"])
    assert table.num_rows == 267_317 and spec.default_chunking == "year" and spec.n_features == 88
    assert slices[0] == 0 and np.all(np.diff(slices) >= 0)  # 0, 0, ..., 1, 1, ...


def _clicks(ns: dict[str, Any], tmp: Path) -> None:
    schema = ns["batch"].schema
    assert schema.names == ["key", "ts", "label", *[f"i{i}" for i in range(1, 14)], *[f"c{i}" for i in range(1, 27)]]
    assert all(pa.types.is_int64(f.type) for f in schema)


def _python_api(ns: dict[str, Any], tmp: Path) -> None:
    from modyn_store.app.report.records import PipelineResult

    res, bench = ns["res"], ns["bench"]
    assert res.trainings and isinstance(res.result, PipelineResult) and res.evaluation_id
    assert len(ns["grid"].pipelines) == 10  # docs: the elec2 grid has 10 pipelines
    for name in ("report.md", "report.html", "metric_over_time.png", "cost_vs_metric.png"):
        assert (tmp / "report" / name).is_file()
    assert len(bench.runs) == 10


def _public_api(ns: dict[str, Any], tmp: Path) -> None:
    store = ns["store"]
    assert ns["rec"].version == 1 and ns["report"].version == 4
    assert store.diff(1, 3).deleted.tolist() == [11, 12]
    assert store.as_of(3).take([15, 10]).column("key").to_pylist() == [15, 10]
    assert store.as_of("v1").count() == 5  # erased keys are gone from every version
    assert store.scores.as_of(None, "loss").column("key").to_pylist() == [10, 14]
    d = store.delta(0, 4)  # rows of version 1 that still exist, by (ts, key); 13 is erased
    assert d.inserted.column("key").to_pylist() == [10, 11, 12, 14, 15]
    assert d.deleted.tolist() == [11, 12] and d.erased.tolist() == [13]


def _extension_table(ns: dict[str, Any], tmp: Path) -> None:
    store = ns["store"]
    assert store.read_table("annotations").column("note").to_pylist() == ["checked"]
    assert store.path("models/abc.pt.zst").endswith("models/abc.pt.zst")


CHECKS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "README.md:3": _readme_store,
    "policies.md:1": _registry,
    "policies.md:3": _runner_loop,
    "scale-out.md:1": _s3,
    "scale-out.md:2": _ray,
    "training.md:1": _training,
    "datasets.md:1": _weather_aus,
    "datasets.md:2": _clicks,
    "pipelines.md:7": _python_api,
    "ARCHITECTURE.md:3": _public_api,
    "ARCHITECTURE.md:4": _extension_table,
}
# blocks whose comments claim values (the claims must keep being found)
CLAIMS = {"README.md:3": 1, "policies.md:1": 2, "policies.md:3": 2, "training.md:1": 1, "ARCHITECTURE.md:3": 4}


def _param(b: Block) -> Any:
    marks: list[Any] = []
    if "slow" in b.marks:
        marks.append(pytest.mark.slow)
    if "ray" in b.marks:
        marks += RAY_MARKS
    if "s3" in b.marks:
        marks.append(pytest.mark.s3)
    return pytest.param(b, marks=marks, id=b.id)


@contextlib.contextmanager
def _ray_cluster() -> Any:
    import ray

    started = not ray.is_initialized()  # a module run before in this process may hold a cluster
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _s3_open(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """``Store.open`` of an ``s3://`` URI goes to the local endpoint (bucket made, test credentials)."""
    import boto3

    from modyn_store import Store

    real = Store.open.__func__  # type: ignore[attr-defined]

    def open_local(cls: Any, uri: str, *args: Any, storage_options: dict[str, str] | None = None, **kw: Any) -> Any:
        if uri.startswith("s3://"):
            assert storage_options is not None
            bucket = uri[len("s3://"):].split("/")[0]
            s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                s3.create_bucket(Bucket=bucket)
            storage_options = {**storage_options, "aws_endpoint": endpoint, "allow_http": "true",
                               "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        return real(cls, uri, *args, storage_options=storage_options, **kw)

    monkeypatch.setattr(Store, "open", classmethod(open_local))


@pytest.mark.parametrize("block", [_param(b) for b in ALL if b.lang == "python"])
def test_python_block(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      request: pytest.FixtureRequest) -> None:
    if "no-run" in block.marks:
        assert block.marks["no-run"], f"{block.id}: say why it does not run"
        _check_names(block)
        return
    monkeypatch.chdir(tmp_path)
    if "s3" in block.marks:
        _s3_open(monkeypatch, request.getfixturevalue("s3_endpoint"))
    ns: dict[str, Any] = {"__name__": "__doc_example__"}
    claims: list[str] = []
    with _ray_cluster() if "ray" in block.marks else contextlib.nullcontext():
        for b in _chain(block):
            if "given" in b.marks:
                globals()[f"given_{b.marks['given']}"](tmp_path, ns, request)
            claims = _run(b, ns)
            if b is not block and b.id in CHECKS:
                CHECKS[b.id](ns, tmp_path)
        if block.id in CHECKS:
            CHECKS[block.id](ns, tmp_path)
    assert len(claims) >= CLAIMS.get(block.id, 0), f"{block.id}: claimed values not found: {claims}"


# -- names, markers, command lines ----------------------------------------------------------------
def _check_names(block: Block) -> None:
    for node in ast.walk(ast.parse(block.code)):
        if isinstance(node, ast.Import):
            for a in node.names:
                importlib.import_module(a.name)
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for a in node.names:
                assert hasattr(module, a.name) or importlib.util.find_spec(f"{node.module}.{a.name}"), \
                    f"{block.id}: {node.module} has no {a.name}"


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in ALL if b.lang == "python"])
def test_every_imported_name_exists(block: Block) -> None:
    """Also for blocks that run only with -m slow / -m ray or not at all."""
    _check_names(block)


def test_markers_and_checks_name_real_blocks() -> None:
    assert {b.doc for b in ALL if b.lang in ("python", "yaml")} == set(DOCS)
    for b in ALL:
        assert set(b.marks) <= MARKERS, f"{b.id}: unknown marker {set(b.marks) - MARKERS}"
        if "given" in b.marks:
            assert callable(globals().get(f"given_{b.marks['given']}")), f"{b.id}: no given_{b.marks['given']}"
    assert set(CHECKS) | set(CLAIMS) <= {b.id for b in ALL if b.lang == "python"}


_GRID_KEYS = {"pipelines", "product", "base"}


def _optional(code: str) -> str:
    """The block with its commented-out optional settings (``# key: ...`` at column 0) in force."""
    return re.sub(r"^# (?=[a-z_]+: )", "", code, flags=re.M)


def _same(given: Any, parsed: Any) -> bool:
    if isinstance(given, list):
        return list(parsed) == given
    return bool(parsed == given)


def _check_pipeline(raw: dict[str, Any], cfg: Any, where: str, folder: Path) -> None:
    """Every setting the file gives is in the parsed configuration (none ignored)."""
    for section in ("training", "evaluation", "limits", "deletions", "source", "model"):
        for k, v in (raw.get(section) or {}).items():
            if section == "source" and k == "dataset" or section == "model" and k == "name":
                continue
            if section == "source" and k in ("path", "store") and isinstance(v, str):
                v = str(folder / v)  # relative to the file
            assert _same(v, getattr(getattr(cfg, section), k)), f"{where}: {section}.{k}"
    for kind in ("trigger", "selection", "update"):
        for k, v in (raw.get(kind) or {}).items():
            assert _same(v, getattr(cfg, kind)[k]), f"{where}: {kind}.{k}"


@pytest.mark.parametrize("block", [_param(b) for b in ALL if b.lang == "yaml"])
def test_yaml_block(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    request: pytest.FixtureRequest) -> None:
    from modyn_store.app.pipeline import load_definition, parse_grid, parse_pipeline

    monkeypatch.chdir(tmp_path)
    if "given" in block.marks:
        globals()[f"given_{block.marks['given']}"](tmp_path, {}, request)
    variants = [block.code] + ([_optional(block.code)] if _optional(block.code) != block.code else [])
    for i, code in enumerate(variants):
        path = tmp_path / f"{block.id.replace(':', '-')}-{i}.yaml"
        path.write_text(code)
        doc = load_definition(path)
        if _GRID_KEYS & set(doc.data):
            grid = parse_grid(doc)
            names = [p.name for p in grid.pipelines]
            explicit = [p["name"] for p in doc.data.get("pipelines", [])]
            product = doc.data.get("product") or {}
            n_product = int(np.prod([len(product.get(k) or {1: 1}) for k in ("trigger", "selection", "update")])) \
                if product else 0
            assert names[:len(explicit)] == explicit and len(names) == len(explicit) + n_product
            if block.id == "pipelines.md:6":
                assert "weekly-new-ft" in names  # the comment's naming: <trigger>-<selection>-<update>
        elif "name" in doc.data:
            _check_pipeline(doc.data, parse_pipeline(doc), block.id, path.parent)
        else:  # a `source:` of its own, in a minimal pipeline
            assert set(doc.data) == {"source"}, f"{block.id}: neither a pipeline, a grid nor a source"
            full = "name: doc\nmodel: {name: mlp}\ntrigger: {name: data_amount, every: 100}\n" + code
            path.write_text(full)
            doc = load_definition(path)
            _check_pipeline(doc.data, parse_pipeline(doc), block.id, path.parent)


def _cli_lines(b: Block) -> list[str]:
    out = []
    for line in b.code.splitlines():
        for part in line.split("&&") if "modyn-store" in line else []:
            words = shlex.split(part, comments=True)
            if words and words[0].endswith("modyn-store"):
                out.append(" ".join(["modyn-store", *words[1:]]))
    return out


def test_command_lines_use_existing_commands_and_options() -> None:
    """``bash`` lines parse as they are; the README's command list names real commands and options."""
    from modyn_store.app.cli.main import build_parser

    parser = build_parser()
    commands: dict[str, Any] = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr,assignment]
    bash = [line for b in ALL if b.lang == "bash" for line in _cli_lines(b)]
    assert len(bash) >= 8
    for line in bash:
        try:
            parser.parse_args(line.split()[1:])
        except SystemExit:
            pytest.fail(f"not a valid command line: {line}")
    listing = [line for b in ALL if b.doc == "README.md" and b.lang == "plain" for line in _cli_lines(b)]
    assert {line.split()[1] for line in listing} == set(commands) - {"import"}  # import: named with export
    for line in listing:
        sub = commands[line.split()[1]]
        known = {o for a in sub._actions for o in a.option_strings}
        for opt in re.findall(r"--[a-z][\w-]*", line):
            assert opt in known, f"{line}: {opt} is not an option of {line.split()[1]}"


def test_torchrun_command_uses_existing_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    from training import distributed

    block = next(b for b in ALL if b.lang == "bash" and "torchrun" in b.code)
    assert hasattr(distributed, "save_train_set")
    with pytest.raises(SystemExit):
        distributed.main(["--help"])
    helptext = capsys.readouterr().out
    after = block.code.split("-m training.distributed", 1)[1]
    for opt in re.findall(r"--[a-z][\w-]*", after):
        assert opt in helptext, f"python -m training.distributed has no {opt}"


def test_entry_point_group_of_the_toml_example() -> None:
    tomllib = pytest.importorskip("tomllib")
    from policies.base import ENTRY_POINT_GROUP

    block = next(b for b in ALL if b.lang == "toml")
    data = tomllib.loads(block.code)
    assert list(data["project"]["entry-points"]) == [ENTRY_POINT_GROUP]
