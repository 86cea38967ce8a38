"""Benchmark grids: many pipelines (triggers x selection strategies x update policies) on one scenario.

A grid file holds a ``base`` pipeline (source, model, training, evaluation) and the pipelines
to compare, as an explicit list (``pipelines:``, each entry overriding the base) and/or a
cartesian ``product`` of named triggers, selections and updates. All pipelines are validated
before any work starts. Without deletion events the stream is ingested once and every pipeline
replays the same store versions (trainings of different pipelines do not interact: each selects
on ``as_of(firing.version)``). A pipeline with deletion events ingests its own store while it
runs, so erasures happen between its trainings as they would in production.

Example
-------
>>> from modyn_store.app.pipeline.bench import parse_grid
>>> grid = parse_grid({"base": {"source": {"dataset": "elec2"}, "model": {"name": "logreg"}},
...                    "product": {"trigger": {"weekly": {"name": "time", "every": "7d"}},
...                                "selection": {"new": {"name": "new_data"}, "all": {"name": "all_data"}},
...                                "update": {"ft": {"name": "finetune"}}}})
>>> [p.name for p in grid.pipelines]
['weekly-new-ft', 'weekly-all-ft']
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modyn_store.app._fmt import md_text, share
from modyn_store.app.pipeline.config import PipelineConfig, parse_pipeline
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.runner import RunEvent, RunResult, Runner, ingest
from modyn_store.app.pipeline.source import prepare_store
from modyn_store.app.pipeline.yamlsrc import YamlDoc, read_yaml

if TYPE_CHECKING:
    from modyn_store.app.report.build import ReportFiles

__all__ = ["BenchResult", "Grid", "load_definition", "parse_grid", "run_grid", "scenario_names", "scenario_path", "shrink_pngs"]

_GRID_KEYS = ("title", "description", "base", "pipelines", "product")


@dataclass(frozen=True)
class Grid:
    """A validated grid: its title, description and pipelines (in order)."""

    title: str
    description: str
    pipelines: tuple[PipelineConfig, ...]


@dataclass(frozen=True)
class BenchResult:
    """The runs of a grid and where its report went."""

    grid: Grid
    runs: tuple[RunResult, ...]
    report_dir: str
    seconds: float


def scenario_names() -> list[str]:
    """Names of the scenarios shipped with the package (``modyn_store/scenarios/<name>.yaml``)."""
    root = resources.files("modyn_store") / "scenarios"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def scenario_path(name_or_path: str | Path) -> Path:
    """A grid or pipeline file: an existing path, or the name of a shipped scenario."""
    p = Path(name_or_path)
    if p.exists():
        return p
    if isinstance(name_or_path, str) and name_or_path in scenario_names():
        return Path(str(resources.files("modyn_store") / "scenarios" / f"{name_or_path}.yaml"))
    raise PipelineConfigError("<file>", f"{str(name_or_path)!r} is neither a file nor a shipped scenario "
                                        f"({', '.join(scenario_names())})")


def load_definition(name_or_path: str | Path) -> YamlDoc:
    """Read a pipeline or grid file (or shipped scenario) with line numbers."""
    p = scenario_path(name_or_path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PipelineConfigError("<file>", f"{str(p)!r} is not a UTF-8 text file (a YAML pipeline or grid "
                                            "definition)") from None
    except OSError as exc:
        raise PipelineConfigError("<file>", f"{str(p)!r} cannot be read as a pipeline or grid definition "
                                            f"({exc.strerror or type(exc).__name__})") from None
    return read_yaml(text, source=str(p))


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if k in ("source", "model", "training", "evaluation", "limits") and isinstance(v, Mapping) \
                and isinstance(out.get(k), Mapping):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def _err(doc: YamlDoc | None, path: tuple[Any, ...], msg: str) -> PipelineConfigError:
    return PipelineConfigError(_key(path), msg, line=doc.line(path) if doc else None, source=doc.source if doc else None)


def parse_grid(raw: Mapping[str, Any] | YamlDoc) -> Grid:
    """Validate a grid definition (every pipeline) and return a :class:`Grid`.

    Raises
    ------
    PipelineConfigError
        Naming the first bad key, e.g. ``pipelines[2].trigger.every`` and its line.
    """
    doc = raw if isinstance(raw, YamlDoc) else None
    data = raw.data if isinstance(raw, YamlDoc) else raw
    if not isinstance(data, Mapping):
        raise _err(doc, (), f"expected a mapping with {list(_GRID_KEYS)}")
    for k in data:
        if k not in _GRID_KEYS:
            raise _err(doc, (k,), f"unknown key; expected one of {list(_GRID_KEYS)}")
    base = {} if data.get("base") is None else data["base"]
    if not isinstance(base, Mapping):
        raise _err(doc, ("base",), "expected a mapping (the shared pipeline settings)")
    out: list[PipelineConfig] = []
    entries = [] if data.get("pipelines") is None else data["pipelines"]
    if not isinstance(entries, list):
        raise _err(doc, ("pipelines",), "expected a list of pipelines")
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping):
            raise _err(doc, ("pipelines", i), "expected a mapping")
        merged = _merge(base, e)
        out.append(_parse_entry(merged, doc, ("pipelines", i), e))
    product = data.get("product")
    if product is not None:
        if not isinstance(product, Mapping):
            raise _err(doc, ("product",), "expected a mapping of trigger/selection/update -> {label: config}")
        axes = []
        for kind in ("trigger", "selection", "update"):
            opts = product.get(kind, {})
            if not isinstance(opts, Mapping):
                raise _err(doc, ("product", kind), "expected a mapping of label -> policy config")
            if kind in product and not opts:  # would run the base's policy under no label, silently
                raise _err(doc, ("product", kind), "an empty axis: give at least one label -> policy config, "
                                                   f"or leave {kind!r} out to use the base's")
            axes.append([(kind, label, cfg) for label, cfg in opts.items()] or [(kind, None, None)])
        for k in product:
            if k not in ("trigger", "selection", "update"):
                raise _err(doc, ("product", k), "unknown key; expected trigger, selection or update")
        for combo in itertools.product(*axes):
            merged = dict(base)
            labels = []
            for kind, label, cfg in combo:
                if label is not None:
                    merged[kind] = cfg
                    labels.append(str(label))
            merged["name"] = "-".join(labels)
            out.append(_parse_entry(merged, doc, ("product",), merged, combo))
    if not out:
        raise _err(doc, ("pipelines",), "no pipelines: give 'pipelines' or 'product'")
    names = [p.name for p in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _err(doc, ("pipelines",), f"pipeline names must be unique; repeated: {dup}")
    _check_comparable(out, doc)
    texts = {"title": "Benchmark report", "description": ""}
    for k, default in texts.items():
        v = data.get(k)
        if v is not None and not isinstance(v, str):  # str() would print a list or a number as the report's heading
            raise _err(doc, (k,), f"expected a string, got {type(v).__name__} {v!r:.80}")
        texts[k] = default if v is None else v
    return Grid(texts["title"], texts["description"], tuple(out))


def _check_comparable(pipelines: Sequence[PipelineConfig], doc: YamlDoc | None) -> None:
    """Refuse a grid whose pipelines are evaluated on other slices or by another metric: the
    report plots and ranks them slice by slice (the metric over time, the Pareto front)."""
    first = pipelines[0]
    for p in pipelines[1:]:
        for field_ in ("slices", "metric"):
            mine, theirs = getattr(p.evaluation, field_, None), getattr(first.evaluation, field_, None)
            if mine != theirs:
                raise _err(doc, ("pipelines",), f"every pipeline of a grid is evaluated on the same slices by the "
                                                f"same metric (the report compares them slice by slice): "
                                                f"{p.name!r} has evaluation.{field_}={mine!r}, {first.name!r} "
                                                f"has {theirs!r}; set it in base")


def _key(path: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))


def _parts(key: str) -> tuple[Any, ...]:
    out: list[Any] = []
    for piece in key.split("."):
        name, *idx = piece.split("[")
        if name:
            out.append(name)
        out += [int(i.rstrip("]")) for i in idx]
    return tuple(out)


def _parse_entry(merged: Mapping[str, Any], doc: YamlDoc | None, where: tuple[Any, ...], entry: Mapping[str, Any],
                 combo: Sequence[Any] | None = None) -> PipelineConfig:
    """Parse one pipeline; errors point at the key where the bad value was written (entry or base)."""
    try:
        return parse_pipeline(merged, prefix=where, doc=doc)
    except PipelineConfigError as exc:
        rel = _parts(exc.key)[len(where):]
        if not rel:
            raise
        top = rel[0]
        origin: tuple[Any, ...] | None = None
        if combo is not None:
            for kind, label, _ in combo:
                if label is not None and kind == top:
                    origin = ("product", kind, label) + rel[1:]
        if origin is None and combo is not None and top == "name":  # a product's name joins its labels
            labelled = [(kind, label) for kind, label, _ in combo if label is not None]
            bad = [(k, lb) for k, lb in labelled if not _safe_label(lb)]
            origin = ("product",) + (bad[0] if bad else labelled[0] if labelled else ())
            raise PipelineConfigError(_key(origin), f"a product's pipeline name joins its labels with '-' "
                                                    f"({exc.message})", line=doc.line(origin) if doc else None,
                                      source=doc.source if doc else None) from exc
        if origin is None and (combo is not None or top not in entry):
            origin = ("base",) + rel
        if origin is None:
            raise
        raise PipelineConfigError(_key(origin), exc.message, line=doc.line(origin) if doc else None,
                                  source=doc.source if doc else None) from exc


def _safe_label(label: Any) -> bool:
    """Whether a product label is a safe pipeline name on its own (see ``parse_pipeline``)."""
    from modyn_store.core._validate import NAME_PATTERN

    return isinstance(label, str) and bool(NAME_PATTERN.match(label)) and ".." not in label and len(label) <= 80


def _fresh_store_dir(path: Path) -> None:
    """Empty a folder of stores from an earlier run; refuse to touch anything that is not a store."""
    from modyn_store.core.store import MARKER

    if not path.exists():
        return
    if (path / MARKER).exists():
        shutil.rmtree(path)
        return
    children = list(path.iterdir())
    strangers = [c.name for c in children if not (c.is_dir() and (c / MARKER).exists())]
    if strangers:
        raise PipelineConfigError("--store", f"{str(path)!r} holds files that are not stores ({strangers[:3]}); "
                                             "choose another folder")
    for c in children:
        shutil.rmtree(c)


def _refuse_sources_inside(grid: Grid, root: Path) -> None:
    """Refuse a ``--store`` folder that is, or holds, the store a pipeline of ``grid`` reads
    (``source: {store: ...}``): the run replaces the stores in that folder, the source included."""
    top = root.expanduser().resolve()  # (a store path opens with ~ expanded)
    for cfg in grid.pipelines:
        uri = str(cfg.source.store) if cfg.source.kind == "store" else ""
        uri = uri[len("file://"):] if uri.startswith("file://") else uri
        if not uri or "://" in uri:
            continue
        src = Path(uri).expanduser().resolve()
        if src == top or top in src.parents:
            raise PipelineConfigError("--store", f"{str(root)!r} is or holds {cfg.source.store!r}, the source store of "
                                                 f"pipeline {cfg.name!r}, and a grid run replaces the stores in "
                                                 "that folder; choose a folder outside the source store")


def _claim(folder: Path, flag: str) -> Any:
    """An exclusive lock on ``folder`` for one grid run (a lock file in the temporary folder, keyed by
    the folder's absolute path); another run holding it is refused, naming ``flag``."""
    import hashlib
    import tempfile

    from filelock import FileLock, Timeout

    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:24]
    lock = FileLock(str(Path(tempfile.gettempdir()) / f"modyn-store-bench-{digest}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise PipelineConfigError(flag, f"{str(folder)!r} is in use by another grid run; wait for it or "
                                        "choose another folder") from None
    return lock


def run_grid(grid: Grid, out_dir: str | Path, *, store_dir: str | Path | None = None, data_dir: str | Path | None = None,
             on_event: Callable[[str, RunEvent], None] | None = None, command: str | None = None) -> BenchResult:
    """Run every pipeline of ``grid`` and render the report into ``out_dir``.

    Parameters
    ----------
    store_dir:
        Folder for the stores (default ``<out_dir>/store``); a previous store there is replaced.
        A folder that is or holds a pipeline's source store is refused.
    on_event:
        Called with ``(pipeline name, event)`` for progress.
    command:
        The command line that made the report (written into ``report.md``).

    Raises
    ------
    PipelineConfigError
        ``--out`` or ``--store`` while another grid run uses that folder; ``--store`` that is or
        holds a pipeline's source store.
    """
    out = Path(out_dir)
    root = Path(store_dir) if store_dir is not None else out / "store"
    _refuse_sources_inside(grid, root)
    locks = [_claim(out, "--out")]
    try:
        if root.resolve() != out.resolve():
            locks.append(_claim(root, "--store"))
        return _run_grid(grid, out, root, data_dir, on_event, command)
    finally:
        for lock in reversed(locks):
            lock.release()


def _run_grid(grid: Grid, out: Path, root: Path, data_dir: str | Path | None,
              on_event: Callable[[str, RunEvent], None] | None, command: str | None) -> BenchResult:
    from modyn_store.app.pipeline.stream import chunk_count, open_stream
    from modyn_store.app.report.build import render_report
    from modyn_store.core.store import Store

    t0 = time.perf_counter()
    tables: dict[str, Any] = {}
    for cfg in grid.pipelines:  # every source opens before the stores of an earlier run are removed
        key = json.dumps(cfg.to_dict()["source"], sort_keys=True)
        if key not in tables:
            tables[key] = open_stream(cfg.source, data_dir)
            if cfg.source.kind != "store":  # a chunk rule that does not fit the event times, before any store
                chunk_count(cfg.source, tables[key])
    _fresh_store_dir(root)
    runners: list[Runner] = []
    groups: dict[str, list[Runner]] = {}
    for cfg in grid.pipelines:  # validate everything (data, columns) before any work
        key = json.dumps(cfg.to_dict()["source"], sort_keys=True)
        r = Runner(cfg, None, data_dir=data_dir, stream=tables[key])
        runners.append(r)
        if cfg.source.kind == "store":  # replayed in place, version by version
            r.prepare()
        elif cfg.deletions is None:
            groups.setdefault(key, []).append(r)
        else:  # deletions happen between trainings: ingest while the pipeline runs, in its own store
            r._store_arg = Store.open(str(root / cfg.name), create=True)
            r.prepare()
    phases = {"ingest": 0.0, "warm-up": 0.0, "maintenance between pipelines": 0.0}
    for members in groups.values():
        # pipelines without deletion events replay one store per source, ingested once
        t1 = time.perf_counter()
        first = members[0]
        folder = "shared" if len(groups) == 1 else f"shared-{first.config.name}"
        store = Store.open(str(root / folder), create=True)
        assert first.stream is not None
        prepare_store(store, first.stream.head)  # the label map before any row, as a single run writes it
        chunks = [c for c, _ in ingest(store, first.config, first.stream)]
        for r in members:
            r._store_arg, r.chunks = store, chunks
            r.prepare()
        phases["ingest"] += time.perf_counter() - t1
    t1 = time.perf_counter()
    for r in runners:  # start-up is paid once per process, before any pipeline is timed
        r.warm_up()
    phases["warm-up"] = time.perf_counter() - t1
    runs = []
    for r in runners:
        if r.chunks is not None:
            # every pipeline starts from the same shared store: the catalogs of earlier pipelines
            # merged into few files, and no rows they materialized left in the cache, so neither
            # bookkeeping nor loading depends on the position in the grid
            t1 = time.perf_counter()
            r.store.compact()
            _empty_cache(r.store)
            phases["maintenance between pipelines"] += time.perf_counter() - t1
        for ev in r.run():
            if on_event is not None:
                on_event(r.config.name, ev)
        assert r.result is not None
        runs.append(r.result)
    shared = len(groups) < len(runners)
    files = render_report([x.result for x in runs], out, title=grid.title)
    shrink_pngs(files.all)
    _append_notes(files, grid, runs, command, shared)
    _append_time_table(files, runs, phases, time.perf_counter() - t0)
    return BenchResult(grid, tuple(runs), str(out), time.perf_counter() - t0)


def _empty_cache(store: Any) -> None:
    from training.cache import cache_for

    cache = cache_for(store)
    for name in cache.entries():
        cache.discard(name)


def shrink_pngs(paths: Sequence[str], *, colors: int = 256) -> None:
    """Re-encode local PNG plots with a palette of ``colors`` (plots stay sharp, files shrink ~3x)."""
    from PIL import Image

    for p in paths:
        if not str(p).endswith(".png") or not Path(p).exists():
            continue
        with Image.open(p) as img:
            small = img.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
        small.save(p, optimize=True)


def _append_notes(files: ReportFiles, grid: Grid, runs: Sequence[RunResult], command: str | None,
                  shared: bool) -> None:
    lines = ["", "## How this report was made", ""]
    if grid.description:
        lines += [md_text(grid.description.strip()), ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += [f"Python {sys.version.split()[0]}; the stream was ingested "
              f"{'once per source and replayed by the pipelines without deletion events' if shared else 'separately for every pipeline'}.", ""]
    lines += ["| pipeline | trigger | selection | update | retrains | fine-tunes | rows selected | wall s (incl. loading) |",
              "|---|---|---|---|---:|---:|---:|---:|"]
    for r in runs:
        desc = r.config.describe()
        n_re = sum(t.mode == "retrain" for t in r.trainings)
        lines.append(f"| {md_text(r.config.name)} | {md_text(desc['trigger'])} | {md_text(desc['selection'])} | "
                     f"{md_text(desc['update'])} | {n_re} | "
                     f"{len(r.trainings) - n_re} | {sum(t.n_keys for t in r.trainings)} | "
                     f"{sum(t.wall_seconds for t in r.trainings):.1f} |")
    from modyn_store.app.report.build import append_section

    append_section(files, "\n".join(lines) + "\n")


def time_table(runs: Sequence[RunResult], phases: Mapping[str, float], total: float) -> str:
    """Where a grid run's wall time went: each pipeline's replay split into optimization,
    scoring forward passes, evaluation and bookkeeping (delta reads, triggers, selection,
    materialization, checkpoint and catalog writes), then the run's shared phases.

    A pipeline's bookkeeping is the rest of its wall time, so its parts add up to it: the
    bookkeeping of its trainings and what it did outside them (the versions replayed after its
    last training, read and shown to the trigger).

    Example
    -------
    >>> print(time_table([], {"ingest": 2.0}, 4.0).splitlines()[-1])
    | whole run | 4.00 | | | | 0.00 | 0.0 |
    """
    lines = ["| part | wall s | optimization s | scoring s | evaluation s | bookkeeping s | bookkeeping % |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    book_all = 0.0
    for r in runs:
        fit = sum(t.train_seconds for t in r.trainings)
        score = sum(t.score_seconds for t in r.trainings)
        book = max(0.0, r.seconds - fit - score - r.evaluation_seconds)
        book_all += book
        lines.append(f"| pipeline {md_text(r.config.name)} | {r.seconds:.2f} | {fit:.2f} | {score:.2f} "
                     f"| {r.evaluation_seconds:.2f} | {book:.2f} | {share(book, r.seconds)} |")
    for name, sec in phases.items():
        lines.append(f"| {name} | {sec:.2f} | | | | | |")
    lines.append(f"| whole run | {total:.2f} | | | | {book_all:.2f} | {share(book_all, total)} |")
    return "\n".join(lines) + "\n"


def _append_time_table(files: ReportFiles, runs: Sequence[RunResult], phases: Mapping[str, float],
                       total: float) -> None:
    intro = ("", "## Where the wall time went", "",
             "A pipeline's wall time is its replay from the first version to its last evaluation; "
             "bookkeeping is the rest of it, what is neither optimization, nor scoring forward passes "
             "nor evaluation: the trainings' bookkeeping (per training in the tables above) and the "
             "versions replayed outside them. The run's own phases follow; the whole run's "
             "bookkeeping share is of the run's wall time up to this report.", "")
    from modyn_store.app.report.build import append_section

    append_section(files, "\n".join(intro) + "\n" + time_table(runs, phases, total))

