"""The ``modyn-store`` command line.

Store commands: ``log``, ``diff``, ``show``, ``tag``, ``erase``, ``compact``, ``vacuum``.
Pipeline commands (``run``, ``bench``, ``report``, ``reproduce``) and ``demo`` are
registered from their own modules.

Example
-------
>>> from modyn_store.app.cli.main import main
>>> main(["--help"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from modyn_store.app._fmt import format_table
from modyn_store.core.errors import ModynStoreError
from modyn_store.core.store import Store, VersionRef

__all__ = ["main"]

# modules that add sub-commands: each defines ``register(subparsers)``
EXTENSIONS = ("modyn_store.app.cli.pipeline_cmds", "modyn_store.app.cli.demo")


def _version_ref(text: str | None) -> VersionRef:
    if text is None:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return text  # a tag name
    return when if when.tzinfo is not None else when.astimezone()  # a time without offset is local


def _open(args: argparse.Namespace) -> Store:
    return Store.open(args.store)


def cmd_log(args: argparse.Namespace) -> int:
    store = _open(args)
    records = store.log()
    if args.limit:
        records = records[-args.limit :]
    tags: dict[int, list[str]] = {}
    for name, v in store.tags().items():
        tags.setdefault(v, []).append(name)
    rows = [
        {
            "version": r.version,
            "time": r.time.strftime("%Y-%m-%d %H:%M:%S"),
            "op": r.op,
            "+rows": r.inserted,
            "-deleted": r.deleted,
            "-erased": r.erased,
            "live": r.live,
            "tags": ",".join(sorted(tags.get(r.version, []))),
            "message": r.message,
        }
        for r in records
    ]
    print(format_table(rows))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    store = _open(args)
    d = store.diff(_version_ref(args.a), _version_ref(args.b))
    print(f"version {d.start} -> {d.end}: {d.inserted.size} inserted, {d.deleted.size} deleted")
    if args.keys:
        print("inserted:", " ".join(map(str, d.inserted[: args.keys].tolist())))
        print("deleted: ", " ".join(map(str, d.deleted[: args.keys].tolist())))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = _open(args)
    snap = store.as_of(_version_ref(args.version))
    schema = snap.schema
    print(f"store {store.uri}  version {snap.version} of {store.version}  live rows {snap.count()}")
    if snap.unavailable().size:
        print(f"unavailable (purged by vacuum): {snap.unavailable().size} rows")
    if schema is None:
        print("(empty store)")
        return 0
    print("columns: " + ", ".join(f"{f.name}:{f.type}" for f in schema))
    cols = args.columns.split(",") if args.columns else [c for c in schema.names][:8]
    rows = []
    for batch in snap.to_batches(cols, args.filter, batch_size=max(args.limit, 1), on_unavailable="skip"):
        rows.extend(batch.to_pylist())
        if len(rows) >= args.limit:
            break
    print(format_table(rows[: args.limit], cols))
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    store = _open(args)
    if args.delete:
        rec = store.untag(args.name)
        print(f"removed tag {args.name!r} (version {rec.version})")
    else:
        rec = store.tag(args.name, _version_ref(args.version))
        print(f"tag {args.name!r} -> version {rec.details['target']} (version {rec.version})")
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    store = _open(args)
    keys = [int(k) for k in args.keys]
    if args.keys_file:
        with open(args.keys_file, encoding="utf-8") as fh:
            keys += [int(line) for line in fh if line.strip()]
    report = store.erase(np.array(keys, dtype=np.int64), reason=args.reason, missing=args.missing)
    print(f"erased {report.keys.size} keys in version {report.version}; caches removed: {report.caches_removed}")
    if report.trainings:
        print("trainings that used erased keys: " + ", ".join(report.trainings))
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    store = _open(args)
    store.compact()
    print(f"compacted {store.uri} (version {store.version} unchanged)")
    return 0


def cmd_vacuum(args: argparse.Namespace) -> int:
    store = _open(args)
    report = store.vacuum(keep_versions=args.keep_versions, dry_run=not args.apply)
    verb = "would purge" if report.dry_run else f"purged (version {report.version})"
    print(f"{verb} {report.keys.size} soft-deleted rows; kept versions: last {args.keep_versions} and tagged")
    if report.dry_run and report.keys.size:
        print("run again with --apply to purge them")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modyn-store",
        description="An embedded, versioned dataset store for training on dynamic data.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("log", help="list the store's versions")
    p.add_argument("store")
    p.add_argument("--limit", type=int, default=0, help="only the last N versions")
    p.set_defaults(func=cmd_log)

    p = sub.add_parser("diff", help="keys inserted and deleted between two versions")
    p.add_argument("store")
    p.add_argument("a", help="version number, tag or ISO time")
    p.add_argument("b", help="version number, tag or ISO time")
    p.add_argument("--keys", type=int, default=0, metavar="N", help="also print up to N keys of each")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("show", help="a version's size, schema and first rows")
    p.add_argument("store")
    p.add_argument("version", nargs="?", help="version number, tag or ISO time (default: latest)")
    p.add_argument("--columns", help="comma-separated columns")
    p.add_argument("--filter", help="SQL filter, e.g. \"label = 1\"")
    p.add_argument("--limit", type=int, default=10)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("tag", help="name a version (or --delete a tag)")
    p.add_argument("store")
    p.add_argument("name")
    p.add_argument("version", nargs="?")
    p.add_argument("--delete", action="store_true")
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("erase", help="erase samples physically (right to erasure)")
    p.add_argument("store")
    p.add_argument("keys", nargs="*")
    p.add_argument("--keys-file", help="a file with one key per line")
    p.add_argument("--reason", required=True)
    p.add_argument("--missing", choices=["error", "ignore"], default="error")
    p.set_defaults(func=cmd_erase)

    p = sub.add_parser("compact", help="merge small files (versions unchanged)")
    p.add_argument("store")
    p.set_defaults(func=cmd_compact)

    p = sub.add_parser("vacuum", help="purge soft-deleted rows old versions no longer need")
    p.add_argument("store")
    p.add_argument("--keep-versions", type=int, default=10)
    p.add_argument("--apply", action="store_true", help="purge (default: dry run)")
    p.set_defaults(func=cmd_vacuum)

    for name in EXTENSIONS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for errors the user can fix)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ModynStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
