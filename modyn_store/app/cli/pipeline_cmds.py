"""Pipeline commands of ``modyn-store``: ``run``, ``bench``, ``report``, ``reproduce``.

- ``run FILE``: one pipeline (a pipeline file, or ``--pipeline NAME`` of a grid or shipped
  scenario) in replay mode; with ``--online`` it follows a store another process writes.
- ``bench GRID``: every pipeline of a grid file or shipped scenario, and the report.
- ``report STORE``: the trainings and evaluations recorded in a store, as tables and a report.
- ``reproduce STORE ID``: retrain a recorded training and compare the weights bit for bit.

Example
-------
>>> from modyn_store.app.cli.main import main
>>> main(["bench", "--list"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any, NoReturn

from modyn_store.app._fmt import Progress, format_table
from modyn_store.app.cli.main import writable_folder
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.core.errors import InvalidArgumentError

__all__ = ["register"]


def _data(args: argparse.Namespace) -> str | None:
    return args.data or os.environ.get("MODYN_STORE_DATA") or None


def _command(args: argparse.Namespace) -> str:
    """The command line that reruns this one as written: from its folder, with the data folder it used.

    The values of ``--storage-option`` (credentials, often) are shown as ``KEY=...``.
    """
    env = os.environ.get("MODYN_STORE_DATA")
    argv = _hide_storage_options(list(getattr(args, "argv", None) or sys.argv[1:]))
    data = f"MODYN_STORE_DATA={shlex.quote(str(Path(env).resolve()))} " if env and "--data" not in argv else ""
    return f"cd {shlex.quote(str(Path.cwd()))} && {data}modyn-store " + " ".join(shlex.quote(a) for a in argv)


def _with_line(exc: Any, doc: Any) -> Any:
    """The error with the YAML line of its key, when the check that raised it did not know the file."""
    from modyn_store.app.pipeline.errors import PipelineConfigError

    if exc.line is not None or exc.key.startswith("-") or doc is None:
        return exc
    parts: list[Any] = []
    for piece in exc.key.split("."):
        name, *idx = piece.split("[")
        parts.append(name)
        parts += [int(i.rstrip("]")) for i in idx]
    line = doc.line(tuple(parts))
    if line is None:
        return exc
    return PipelineConfigError(exc.key, exc.message, line=line, source=doc.source)


def _pick(doc: Any, name: str | None) -> Any:
    from modyn_store.app.pipeline.bench import parse_grid
    from modyn_store.app.pipeline.config import parse_pipeline
    from modyn_store.app.pipeline.errors import PipelineConfigError

    data = doc.data
    if isinstance(data, dict) and ("pipelines" in data or "product" in data):
        grid = parse_grid(doc)
        names = [p.name for p in grid.pipelines]
        if name is None and len(names) == 1:
            return grid.pipelines[0]
        if name not in names:
            raise PipelineConfigError("--pipeline", f"the file holds a grid; pick one of {names}")
        return grid.pipelines[names.index(name)]
    cfg = parse_pipeline(doc)
    if name is not None and name != cfg.name:  # a name that is not the file's one pipeline: never ignored
        raise PipelineConfigError("--pipeline", f"{name!r} is not in the file, which holds one pipeline; pick "
                                                f"{[cfg.name]} or leave --pipeline out")
    return cfg


def _hide_storage_options(argv: list[str]) -> list[str]:
    """``argv`` with each ``--storage-option KEY=VALUE`` written ``KEY=...``."""
    out: list[str] = []
    for i, a in enumerate(argv):
        if a.startswith("--storage-option="):
            a = "--storage-option=" + a.split("=", 2)[1] + "=..."
        elif i and argv[i - 1] == "--storage-option":
            a = a.partition("=")[0] + "=..."
        out.append(a)
    return out


def _with_storage_options(doc: Any, args: argparse.Namespace) -> Any:
    """``doc`` with ``run --storage-option KEY=VALUE`` as its source's ``storage_options``.

    They apply to the source (a store, or your own files) of a file with one pipeline, and are
    checked with it while it is parsed; a key given twice, a grid, or a source that already
    gives ``storage_options`` is refused naming ``--storage-option``.
    """
    from modyn_store.app.cli.data_cmds import _options

    options = _options(args)
    if options is None:
        return doc
    data = doc.data
    if not isinstance(data, dict) or "pipelines" in data or "product" in data:
        raise PipelineConfigError("--storage-option", "applies to a file with one pipeline; in a grid give "
                                                      "storage_options in the source section")
    source = data.get("source")
    if not isinstance(source, dict):
        return doc  # no source section, or not a mapping: parsing names it
    if source.get("storage_options") is not None:
        raise PipelineConfigError("--storage-option", "the definition's source already gives storage_options; "
                                                      "give them in one place")
    return type(doc)({**data, "source": {**source, "storage_options": options}}, doc.lines, doc.source)


def cmd_run(args: argparse.Namespace) -> int:
    from modyn_store.app.pipeline.bench import load_definition
    from modyn_store.app.pipeline.online import check_follow
    from modyn_store.app.pipeline.runner import Runner

    if args.online:
        check_follow(poll=1.0 if args.poll is None else args.poll, idle_timeout=args.idle_timeout,
                     stop_after=args.stop_after, cli=True)
    else:  # a replay reads its whole source: a follow setting would be ignored
        for flag in ("poll", "idle_timeout", "stop_after"):
            if getattr(args, flag) is not None:
                raise PipelineConfigError("--" + flag.replace("_", "-"), "applies to --online only; a replay "
                                          "reads its whole source: add --online or leave it out")
    doc = load_definition(args.file)
    if args.online and isinstance(doc.data, dict) and "source" not in doc.data and "pipelines" not in doc.data:
        if not args.store:
            raise PipelineConfigError("source", "missing; give source: {store: PATH} or --store STORE to follow")
        where = args.store if "://" in args.store else str(Path(args.store).resolve())
        doc = type(doc)({**doc.data, "source": {"store": where}}, doc.lines, doc.source)
    doc = _with_storage_options(doc, args)
    cfg = _pick(doc, args.pipeline)
    if getattr(args, "ray", None):
        from dataclasses import replace

        from modyn_store.app.pipeline.config import RayConfig

        from modyn_store.app.pipeline.checks import ray_address_problem

        problem = ray_address_problem(args.ray)
        if problem is not None:
            raise PipelineConfigError("--ray", f"{args.ray!r}: {problem}")
        base = cfg.ray if cfg.ray is not None else RayConfig()
        cfg = replace(cfg, ray=replace(base, address=args.ray))
    made = _folders([(args.out, "--out")]) if args.out else []  # before the run, not after it
    from_store = cfg.source.kind == "store"
    store_dir = args.store or (cfg.source.store if from_store else f"modyn-store-runs/{cfg.name}")
    if args.online:
        from modyn_store.app.pipeline.online import OnlineRunner

        if cfg.source.kind in ("files", "data") and not args.store:
            raise PipelineConfigError("--store", f"--online follows a store, and {cfg.source.label_text} is a file: "
                                                 "append it to a store (modyn-store append) and give "
                                                 "source: {store: PATH} or --store PATH")

        def trained(info: Any) -> None:
            print(f"{info.training_id}: {info.mode} on {info.n_keys} rows (cutoff version {info.cutoff[0]})", flush=True)
            if online.next_slice and online.next_slice[-1].replaced_by == info.training_id:
                ns = online.next_slice[-1]
                print(f"  {ns.training_id} while it served: {ns.metric} {ns.value:.3f} on {ns.rows} new rows", flush=True)

        online = OnlineRunner(cfg, store_dir, poll=1.0 if args.poll is None else args.poll, data_dir=_data(args),
                              on_training=trained)

        def started() -> None:
            print(f"following {online.store.uri} as pipeline {cfg.name!r}; stop with SIGTERM or Ctrl-C", flush=True)

        n = online.run(idle_timeout=args.idle_timeout, stop_after=args.stop_after, on_start=started)
        total = len(online.loop.trainings) if online.loop is not None else 0
        print(f"online pipeline {cfg.name!r} stopped at version {online.processed}; {n} new trainings "
              f"({total} in all)")
        if args.out:
            _online_report(online, cfg, args)
        return 0
    runner = Runner(cfg, None if from_store and not args.store else store_dir, data_dir=_data(args))
    try:
        runner.prepare()
    except PipelineConfigError as exc:
        _remove_empty(made)
        raise _with_line(exc, doc) from exc.__cause__
    except BaseException:
        _remove_empty(made)
        raise
    bar = None
    for ev in runner.run():
        if bar is None:
            bar = Progress(ev.total, cfg.name)
        if ev.kind == "ingest":
            bar.update(1, ev.message)
        elif ev.kind in ("evaluate", "done"):
            bar.close()
            print(ev.message, file=sys.stderr)
    res = runner.result
    assert res is not None
    _print_runs([res])
    if args.out:
        from modyn_store.app.report.build import append_section, render_report

        files = render_report([res.result], args.out, title=f"Pipeline {cfg.name}")
        append_section(files, _labels_section(runner.store) + "\n## How this report was made\n\n```\n"
                       + _command(args) + "\n```\n")
        print(f"report: {files.markdown}")
    print(f"store: {res.store_uri}")
    return 0


def _online_report(online: Any, cfg: Any, args: argparse.Namespace) -> None:
    """Evaluate the trainings of a stopped online pipeline and write its report into ``out``."""
    from modyn_store.app.pipeline.runner import evaluate_pipeline, threads
    from modyn_store.app.report.build import append_section, render_report

    out = args.out
    trainings = list(online.loop.trainings) if online.loop is not None else []
    if not trainings:
        print(f"no trainings yet; no report written to {out}")
        return
    with threads(cfg.training.threads):
        result, _ = evaluate_pipeline(online.store, cfg, trainings)
    files = render_report([result], out, title=f"Online pipeline {cfg.name}")
    lines = ["", "## Next-slice evaluation", "",
             "Each model on the rows that arrived while it was in service (until the next model or the stop).", "",
             "| model | replaced by | rows | metric | value |", "|---|---|---:|---|---:|"]
    lines += [f"| {n.training_id} | {n.replaced_by or '(stop)'} | {n.rows} | {n.metric} | {n.value:.4f} |"
              for n in online.next_slice]
    lines += [_labels_section(online.store), "## How this report was made", "", "```", _command(args), "```", ""]
    append_section(files, "\n".join(lines) + "\n")
    print(f"report: {files.markdown}")


def _labels_section(store: Any) -> str:
    """A report section naming the labels behind the class codes (empty without a label map)."""
    from modyn_store.app.datasets.labels import describe_labels

    from modyn_store.app._fmt import md_text

    text = describe_labels(store)
    # label values are the data's own text: plain text in Markdown, never markup
    return f"\n## Labels\n\n{md_text(text)}\n" if text else ""


def _print_runs(runs: list[Any]) -> None:
    from modyn_store.app.report.build import summarize, undefined_metric_notes

    rows = []
    for s, r in zip(summarize([x.result for x in runs]), runs):
        rows.append({"pipeline": s.name, "trigger": s.trigger, "selection": s.selection, "update": s.update,
                     "trainings": s.n_triggers, "retrains": sum(t.mode == "retrain" for t in r.trainings),
                     "samples": s.samples_trained, "train s": round(s.train_seconds, 2),
                     f"mean {r.result.metric}": round(s.mean_metric, 3),
                     f"final {r.result.metric}": round(s.final_metric, 3), "pareto": "*" if s.pareto else ""})
    print(format_table(rows))
    for note in undefined_metric_notes([x.result for x in runs]):
        print(note[2:].replace("**", ""))


def cmd_bench(args: argparse.Namespace) -> int:
    from modyn_store.app.pipeline.bench import load_definition, parse_grid, run_grid, scenario_names

    if args.list or not args.grid:
        print("shipped scenarios: " + ", ".join(scenario_names()))
        return 0 if args.list else 2
    grid = parse_grid(load_definition(args.grid))
    out = args.out or f"modyn-store-bench/{Path(args.grid).stem}"
    made = _folders([(out, "--out")] + ([(args.store, "--store")] if args.store else []))
    print(f"{grid.title}: {len(grid.pipelines)} pipelines -> {out}", file=sys.stderr)
    bars: dict[str, Progress] = {}

    def on_event(name: str, ev: Any) -> None:
        if name not in bars:
            bars[name] = Progress(ev.total, f"{name:>18}")
        if ev.kind == "ingest":
            bars[name].update(1, ev.message)
        elif ev.kind == "done":
            bars[name].close()

    try:
        result = run_grid(grid, out, store_dir=args.store, data_dir=_data(args), on_event=on_event,
                          command=_command(args))
    except BaseException:
        _remove_empty(made)  # the folders this command made, where the failure left them empty
        raise
    _print_runs(list(result.runs))
    stores = {r.store_uri for r in result.runs}
    if len(stores) == 1:
        from modyn_store.core.store import Store

        section = _labels_section(Store.open(stores.pop()))
        if section:
            from modyn_store.app.report.build import ReportFiles, append_section

            append_section(ReportFiles(str(Path(out) / "report.md"), str(Path(out) / "report.html"), (), "", ""),
                           section)
    print(f"report: {Path(out) / 'report.md'} ({result.seconds:.0f} s)")
    return 0


def _folders(folders: list[tuple[str, str]]) -> list[Path]:
    """Create every ``(path, flag)`` folder, or none: a refused one removes the folders made before it.

    Returns the folders this call created (for :func:`_remove_empty`)."""
    made: list[Path] = []
    try:
        for path, flag in folders:
            missing = [] if "://" in path else [p for p in (Path(path), *Path(path).parents) if not os.path.exists(p)]
            try:
                writable_folder(path, flag)
            except Exception:
                made += [p for p in missing if os.path.isdir(p)]  # the parents it made before the refusal
                raise
            made += missing
    except Exception:
        _remove_empty(made)
        raise
    return made


def _remove_empty(made: list[Path]) -> None:
    """Remove the folders of ``made`` that are still empty, deepest first over all of them: a new
    parent that two folders share (``--out new/out --store new/store``) is emptied by both first."""
    for p in sorted(made, key=lambda p: len(p.absolute().parts), reverse=True):
        if p.is_dir() and not any(p.iterdir()):
            p.rmdir()


def cmd_report(args: argparse.Namespace) -> int:
    from modyn_store.app.pipeline.history import pipeline_results, pipeline_trainings, trainings_table, unevaluated
    from modyn_store.core.store import Store

    store = Store.open(args.store)
    groups = pipeline_trainings(store)
    if not groups:  # an empty report (or none, with --out) would read as a success
        _no_trainings(store)
    if args.pipeline and args.pipeline not in groups:
        raise PipelineConfigError("--pipeline", f"no pipeline {args.pipeline!r} in this store; pick one of "
                                                f"{list(groups)}")
    from modyn_store.app.datasets.labels import describe_labels

    labels = describe_labels(store)
    if labels:
        print(labels)
    stale = unevaluated(store)
    for name, recs in groups.items():
        if args.pipeline and name != args.pipeline:
            continue
        print(f"\n== {name}: {len(recs)} trainings")
        print(format_table(trainings_table(recs)))
        missing = stale.get(name, [])
        if missing:
            print(f"not in the latest evaluation (left out of the report's metrics and costs): {', '.join(missing)}")
    if args.out:
        from modyn_store.app.report.build import append_section, render_report

        results = [r for r in pipeline_results(store) if not args.pipeline or r.name == args.pipeline]
        if not results:
            raise InvalidArgumentError("--out", args.out, "a folder for the plots and pages of evaluated pipelines; "
                                                         f"{'pipeline ' + repr(args.pipeline) if args.pipeline else 'no pipeline'} "
                                                         "of this store has an evaluation recorded, so nothing was "
                                                         "written (the trainings table above is all there is)")
        metrics: dict[str, list[str]] = {}
        for r in results:
            metrics.setdefault(r.metric, []).append(r.name)
        if len(metrics) > 1:  # one report ranks pipelines by one metric
            raise PipelineConfigError("--pipeline", "the pipelines of this store were evaluated with different metrics "
                                                    f"({', '.join(f'{m}: {n}' for m, n in metrics.items())}); "
                                                    "report one of them")
        windows: dict[tuple[str, ...], list[str]] = {}
        for r in results:
            windows.setdefault(tuple(r.slice_labels), []).append(r.name)
        if len(windows) > 1:  # one report compares pipelines slice by slice, on the same time slices
            raise PipelineConfigError("--pipeline", "the pipelines of this store were evaluated on different time "
                                                    "slices (" + "; ".join(f"{', '.join(n)}: {len(s)} slices from "
                                                                           f"{s[0] if s else '-'}"
                                                                           for s, n in windows.items())
                                      + "); report one of them")
        writable_folder(args.out, "--out")
        files = render_report(results, args.out, title=f"Pipelines of {store.uri}")
        section = _labels_section(store)
        if section:
            append_section(files, section)
        print(f"\nreport: {files.markdown}")
    return 0


def _no_trainings(store: Any) -> NoReturn:
    """Refuse to report on a store whose catalog holds no pipeline's training, naming what it holds."""
    from modyn_store.core.trainings import Catalog

    others = len(Catalog(store).list())
    held = f"its {others} trainings were not made by a pipeline" if others else "it holds no training"
    raise InvalidArgumentError("STORE", store.uri, "a store with pipeline trainings to report (`modyn-store run "
                                                   f"PIPELINE.yaml --store STORE` records them); {held}")


def _check_recorded(store: Any, training_id: str) -> None:
    """Refuse a training id the store's catalog does not hold, naming the ids it does."""
    from modyn_store.core.errors import UnknownKeyError
    from modyn_store.core.trainings import Catalog

    catalog = Catalog(store)
    try:
        catalog.get(training_id)
    except UnknownKeyError as exc:
        ids = [r.training_id for r in catalog.list()]
        shown = ids if len(ids) <= 6 else [*ids[:3], "...", *ids[-2:]]
        raise UnknownKeyError(f"{exc}; TRAINING_ID is one of its {len(ids)} trainings: {', '.join(shown)}" if ids
                              else f"{exc}, which holds no training yet (`modyn-store run` records them)") from None


def cmd_reproduce(args: argparse.Namespace) -> int:
    from modyn_store.core.trainings import Catalog
    from modyn_store.app.pipeline.runner import threads
    from modyn_store.core.store import Store

    import training

    from modyn_store.app.pipeline.selection import recorded_downsample

    store = Store.open(args.store)
    _check_recorded(store, args.training_id)
    rec = Catalog(store).get(args.training_id)
    with threads(int(rec.metrics.get("threads", 1))):
        # the strategy that chose each batch's rows (RHO-LOSS: with its recorded irreducible-loss model)
        downsample = recorded_downsample(store, rec)
        rep = training.reproduce(store, args.training_id, downsample=downsample)
    print(f"training {args.training_id}: {rep.train_set.size} keys at version {rep.train_set.version}; "
          f"weights {'identical' if rep.identical else 'DIFFER in ' + ', '.join(rep.mismatched)}")
    return 0 if rep.identical else 1


def register(sub: Any) -> None:
    """Add ``run``, ``bench``, ``report`` and ``reproduce`` to the ``modyn-store`` sub-commands."""
    data_help = "data folder for sources without a path (default: $MODYN_STORE_DATA)"

    p = sub.add_parser("run", help="run one pipeline (replay, or --online on a live store)")
    p.add_argument("file", help="pipeline or grid YAML file, or a shipped scenario name")
    p.add_argument("--pipeline", help="the pipeline to run when the file holds a grid")
    p.add_argument("--store", help="store folder (default: modyn-store-runs/<name>)")
    p.add_argument("--out", help="also write a report into this folder (online: when it stops)")
    p.add_argument("--data", help=data_help)
    p.add_argument("--online", action="store_true", help="follow the store's new versions instead of replaying")
    p.add_argument("--poll", type=float, default=None, help="online: seconds between looks at the store (default 1)")
    p.add_argument("--idle-timeout", type=float, default=None, help="online: stop after this many idle seconds")
    p.add_argument("--stop-after", type=int, default=None, help="online: stop at this store version")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="score and select on this Ray cluster ('auto', 'ray://host:port', 'host:port', "
                        "'local')")
    p.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                   help="object-store option for the source (a store or files), in Lance's spelling (repeat "
                        "it, once per key), e.g. aws_endpoint=http://localhost:9000; the definition's "
                        "source.storage_options must then be left out")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("bench", help="run a grid of pipelines on a scenario and write the report")
    p.add_argument("grid", nargs="?", help="grid YAML file or shipped scenario name")
    p.add_argument("--out", help="report folder (default: modyn-store-bench/<grid>)")
    p.add_argument("--store", help="folder for the stores (default: <out>/store)")
    p.add_argument("--data", help=data_help)
    p.add_argument("--list", action="store_true", help="list the shipped scenarios")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("report", help="trainings and evaluations recorded in a store")
    p.add_argument("store", metavar="STORE", help="store folder or URL")
    p.add_argument("--pipeline", help="only this pipeline")
    p.add_argument("--out", help="render plots and pages into this folder")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("reproduce", help="retrain a recorded training and compare its weights")
    p.add_argument("store", metavar="STORE", help="store folder or URL")
    p.add_argument("training_id", metavar="TRAINING", help="a training id, as report lists them")
    p.set_defaults(func=cmd_reproduce)

