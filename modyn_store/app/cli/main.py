"""The ``modyn-store`` command line.

Store commands: ``log``, ``diff``, ``show``, ``tag``, ``tags``, ``erase``, ``compact``, ``vacuum``
(``--json`` on ``log``, ``diff``, ``show`` and ``tags``; times are printed as ISO times with their
time zone, which ``diff`` and ``show`` accept back). Data commands (``append``, ``import``,
``export``, ``labels``), pipeline commands (``run``, ``bench``, ``report``, ``reproduce``) and ``demo`` are
registered from their own modules.

Example
-------
>>> from modyn_store.app.cli.main import main
>>> main(["--help"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import errno
import importlib
import math
import os
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from modyn_store.app._fmt import format_table
from modyn_store.app.cli._parser import CommandParser, Parser
from modyn_store.app.cli._times import version_ref  # (also for the data commands)
from modyn_store.core.errors import InvalidArgumentError, ModynStoreError
from modyn_store.core.store import Store

if TYPE_CHECKING:
    from modyn_store.app.datasets.labels import LabelMap

__all__ = ["main"]

# modules that add sub-commands: each defines ``register(subparsers)``
EXTENSIONS = ("modyn_store.app.cli.delete_cmd", "modyn_store.app.cli.data_cmds", "modyn_store.app.cli.pipeline_cmds",
              "modyn_store.app.cli.demo", "modyn_store.app.cli.verify_cmd")

#: Python-API wording in messages -> the command line's
_CLI_WORDS = (("pass create=True to make one", "create one with `modyn-store append STORE FILE`"),
              ("pass missing='ignore' to skip them", "pass --missing ignore to skip them"),
              ("missing='ignore'", "--missing ignore"), ("keep_versions", "--keep-versions"),
              ("invalid columns=", "invalid --columns="))


def _when(t: datetime) -> str:
    """An ISO time with its offset, to the microsecond a version's time is kept at: pasted back
    into ``diff`` or ``show`` it names that version even when several were committed within one
    second."""
    return t.isoformat(timespec="microseconds")


def store_folder(store: Store) -> str:
    """The store's folder (a local path) or prefix (a URI)."""
    return str(store.path("_modyn_store.json")).rsplit("/", 1)[0]


def _size(store: Store) -> int | None:
    """Bytes the store's folder takes (``None`` where the file system cannot tell)."""
    try:
        return int(store.fs.du(store_folder(store), total=True))
    except (OSError, NotImplementedError, TypeError, ValueError):
        return None


def _details(r: object) -> str:
    d = getattr(r, "details", {}) or {}
    parts = []
    if "reason" in d:
        parts.append(f"reason: {d['reason']}")
    if "purged" in d:
        parts.append(f"purged {d['purged']} rows")
    if "tag" in d:
        parts.append(f"tag {d['tag']}" + (f" -> {d['target']}" if "target" in d else " removed"))
    if d.get("ignored"):
        parts.append(f"{d['ignored']} keys ignored")
    return "; ".join(parts)


_version_ref = version_ref

#: the keys a store holds are int64
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def os_reason(exc: OSError) -> str:
    """An OS error in words, without the path (``No such file or directory``)."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


def non_negative(value: int, flag: str, meaning: str) -> int:
    """``value`` when it is >= 0, else the error naming ``flag`` (a negative N would slice from the end)."""
    if value < 0:
        raise InvalidArgumentError(flag, value, f"an integer >= 0 ({meaning})")
    return value


def writable_folder(path: str, flag: str) -> None:
    """Create the local folder ``path`` (and its parents), or refuse ``flag`` naming why not."""
    if "://" in path:
        return
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        reason = {errno.EEXIST: "it is a file", errno.ENOTDIR: "a parent of it is a file"}.get(exc.errno or 0,
                                                                                              os_reason(exc))
        raise InvalidArgumentError(flag, path, f"a folder that can be created and written ({reason})") from None


def _open(args: argparse.Namespace) -> Store:
    return Store.open(args.store)


def _finite(obj: object) -> object:
    """``obj`` with every NaN and infinity replaced by ``None``: JSON has no such numbers, and
    ``NaN`` tokens break strict parsers (``JSON.parse``, ``jq``)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _print_json(obj: object) -> None:
    """Strict JSON (non-finite numbers as ``null``; other values through ``str``)."""
    import json

    print(json.dumps(_finite(obj), default=str, allow_nan=False))


def cmd_log(args: argparse.Namespace) -> int:
    non_negative(args.limit, "--limit", "the last N versions; 0: all")
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
            "time": _when(r.time),
            "op": r.op,
            "+rows": r.inserted,
            "-deleted": r.deleted,
            "-erased": r.erased,
            "live": r.live,
            "tags": ",".join(sorted(tags.get(r.version, []))),
            "message": r.message,
            "details": _details(r),
        }
        for r in records
    ]
    if args.json:
        _print_json([{**row, "details": r.details} for row, r in zip(rows, records)])
        return 0
    print(format_table(rows))
    return 0


def cmd_tags(args: argparse.Namespace) -> int:
    store = _open(args)
    tags = store.tags()
    if args.json:
        _print_json(tags)
        return 0
    print(format_table([{"tag": k, "version": v} for k, v in sorted(tags.items(), key=lambda kv: kv[1])])
          if tags else "(no tags)")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    non_negative(args.keys, "--keys", "how many keys of each to print; 0: none")
    store = _open(args)
    d = store.diff(version_ref(args.a, "FROM"), version_ref(args.b, "TO"))
    if args.json:
        _print_json({"from": d.start, "to": d.end, "inserted": int(d.inserted.size), "deleted": int(d.deleted.size),
                     "inserted_keys": d.inserted[: args.keys].tolist(), "deleted_keys": d.deleted[: args.keys].tolist()})
        return 0
    print(f"version {d.start} -> {d.end}: {d.inserted.size} inserted, {d.deleted.size} deleted")
    if args.keys:
        print("inserted:", " ".join(map(str, d.inserted[: args.keys].tolist())))
        print("deleted: ", " ".join(map(str, d.deleted[: args.keys].tolist())))
    return 0


def clean_filter_error(exc: Exception) -> str:
    """Lance's parser message without the paths of its Rust sources."""
    import re

    text = re.sub(r",?\s*\S*\.rs:\d+(:\d+)?", "", str(exc))
    return text.replace("Invalid user input: ", "")


def _label_map(store: Store, version: int) -> LabelMap | None:
    from modyn_store.app.datasets.labels import read_label_map

    return read_label_map(store, version)


def cmd_show(args: argparse.Namespace) -> int:
    from modyn_store.core.errors import InvalidFilterError

    non_negative(args.limit, "--limit", "rows to print")
    store = _open(args)
    snap = store.as_of(version_ref(args.version))
    schema = snap.schema
    rec = store.log(since=snap.version - 1)[0] if snap.version else None
    head = {"store": store.uri, "version": snap.version, "latest": store.version, "live_rows": snap.count(),
            "time": _when(rec.time) if rec is not None else None,
            "unavailable": int(snap.unavailable().size)}
    if schema is None:
        if args.json:
            _print_json({**head, "columns": {}, "rows": []})
        else:
            print(f"store {store.uri}  version {snap.version} of {store.version}  live rows 0\n(empty store)")
        return 0
    cols = args.columns.split(",") if args.columns is not None else [c for c in schema.names][:8]
    rows: list[dict[str, object]] = []
    try:
        batch_size = min(max(args.limit, 1), 1 << 16)  # a --limit above the rows means all of them
        for batch in snap.to_batches(cols, args.filter, batch_size=batch_size, on_unavailable="skip"):
            rows.extend(batch.to_pylist())
            if len(rows) >= args.limit:
                break
    except InvalidFilterError as exc:
        hint = ""
        if "label" in (args.filter or "") and _label_map(store, snap.version) is not None:
            hint = "; labels are stored as class codes (`modyn-store labels STORE` lists them): filter on the code"
        raise InvalidFilterError(f"--filter: {clean_filter_error(exc)}{hint}") from None
    labels = _label_map(store, snap.version)
    if labels is not None and not labels.identity and "label" in cols:
        decoded, i = "label_value", 0  # a name no stored column has: the data may hold a label_value column
        while decoded in schema.names:
            i += 1
            decoded = f"label_value_{i}"
        for r in rows:  # the label each class code stands for, next to the code
            code = r.get("label")
            r[decoded] = labels.values[int(code)] if isinstance(code, int) else None
        cols = cols[: cols.index("label") + 1] + [decoded] + cols[cols.index("label") + 1 :]
    if args.json:
        _print_json({**head, "columns": {f.name: str(f.type) for f in schema}, "rows": rows[: args.limit]})
        return 0
    when = head["time"] if rec is not None else "the empty store before the first write"  # version 0: no commit
    print(f"store {store.uri}  version {snap.version} of {store.version} ({when})  live rows {snap.count()}")
    if head["unavailable"]:
        print(f"unavailable (purged by vacuum): {head['unavailable']} rows")
    print("columns: " + ", ".join(f"{f.name}:{f.type}" for f in schema))
    print(format_table(rows[: args.limit], cols))
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    if args.delete and args.version is not None:
        # a tag is removed by its name alone: a VERSION would be ignored, not checked
        raise InvalidArgumentError("VERSION", args.version, "no VERSION with --delete (it removes the tag NAME "
                                                            "whatever version it names; see `modyn-store tags STORE`)")
    store = _open(args)
    if args.delete:
        rec = store.untag(args.name)
        print(f"removed tag {args.name!r} (version {rec.version})")
    else:
        rec = store.tag(args.name, version_ref(args.version))
        print(f"tag {args.name!r} -> version {rec.details['target']} (version {rec.version})")
    return 0


def _keys(texts: list[str], where: str) -> list[int]:
    out = []
    for t in texts:
        # ASCII digits only: int() also reads '1_0' as 10 and '٣' as 3, which would erase another key
        if not re.fullmatch(r"[+-]?[0-9]+", t.strip()):
            raise InvalidArgumentError(where, t, "integer keys of ASCII digits, e.g. 42 or -7 (see `modyn-store "
                                                 "show STORE --columns key`)")
        key = int(t)
        if not _INT64_MIN <= key <= _INT64_MAX:
            raise InvalidArgumentError(where, t, "integer keys in the int64 range (-2**63 .. 2**63-1)")
        out.append(key)
    return out


def _key_lines(path: str) -> list[str]:
    """The non-empty lines of a ``--keys-file``."""
    try:
        with open(path, encoding="utf-8") as fh:
            return [line.strip() for line in fh if line.strip()]
    except OSError as exc:
        raise InvalidArgumentError("--keys-file", path, f"a readable file with one key per line ({os_reason(exc)})") \
            from None
    except UnicodeDecodeError:
        raise InvalidArgumentError("--keys-file", path, "a UTF-8 text file with one key per line") from None


def named_keys(args: argparse.Namespace) -> list[int]:
    """The keys a command names: ``KEY`` arguments, then the lines of ``--keys-file``."""
    keys = _keys(args.keys, "KEY")
    if args.keys_file:
        keys += _keys(_key_lines(args.keys_file), f"--keys-file {args.keys_file}")
    return keys


def cmd_erase(args: argparse.Namespace) -> int:
    keys = named_keys(args)
    if not keys:
        raise InvalidArgumentError("KEY", "(none)", "at least one key, or --keys-file")
    store = _open(args)
    before = _size(store)
    report = store.erase(np.array(keys, dtype=np.int64), reason=args.reason, missing=args.missing)
    if report.version is None:
        print(f"nothing to erase: the {len(set(keys))} keys were never stored or are already erased; "
              f"nothing written (version {store.version} unchanged)")
        return 0
    after = _size(store)
    skipped = len(set(keys)) - report.keys.size
    print(f"erased {report.keys.size} keys in version {report.version} (reason: {report.reason}"
          + (f"; {skipped} keys never stored or already erased, skipped" if skipped else "")
          + f"); caches removed: {report.caches_removed}" + _reclaimed(before, after))
    if report.trainings:
        print("trainings that used erased keys: " + ", ".join(report.trainings))
    if report.descendants:
        print("trainings fine-tuned from them: " + ", ".join(report.descendants))
    return 0


def _reclaimed(before: int | None, after: int | None) -> str:
    """The change in the store's size: bytes reclaimed, or by how much it grew (a new version's
    files can outweigh what a purge or compaction removes)."""
    if before is None or after is None:
        return ""
    if after > before:
        return f"; the store grew by {after - before:,} bytes ({before:,} -> {after:,})"
    return f"; {before - after:,} bytes reclaimed ({before:,} -> {after:,})"


def cmd_compact(args: argparse.Namespace) -> int:
    store = _open(args)
    before = _size(store)
    store.compact()
    print(f"compacted {store.uri} (version {store.version} unchanged)" + _reclaimed(before, _size(store)))
    return 0


def cmd_vacuum(args: argparse.Namespace) -> int:
    store = _open(args)
    before = _size(store)
    report = store.vacuum(keep_versions=args.keep_versions, dry_run=not args.apply)
    if not report.dry_run and report.version is None:
        print(f"nothing to purge (version {store.version} unchanged); kept versions: last "
              f"{args.keep_versions} and tagged")
        return 0
    verb = "would purge" if report.dry_run else f"purged (version {report.version})"
    print(f"{verb} {report.keys.size} soft-deleted rows; kept versions: last {args.keep_versions} and tagged"
          + ("" if report.dry_run else _reclaimed(before, _size(store))))
    if report.trainings:
        shown = ", ".join(report.trainings[:10]) + (", ..." if len(report.trainings) > 10 else "")
        print(f"{len(report.trainings)} recorded trainings {'would lose' if report.dry_run else 'lost'} rows of "
              f"their train sets and cannot be reproduced{' once purged' if report.dry_run else ''}: {shown}"
              + ("; tag their data versions (`modyn-store tag`) to keep them" if report.dry_run else ""))
    if report.dry_run and report.keys.size:
        print("run again with --apply to purge them")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="modyn-store",
        description="An embedded, versioned dataset store for training on dynamic data.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)

    store_help = "store folder or URL (memory://, s3://...)"
    ref_help = ("version number, tag or ISO time with a time of day (as log prints it; without an offset: local "
                "time; a date alone is refused)")
    p = sub.add_parser("log", help="list the store's versions")
    p.add_argument("store", metavar="STORE", help=store_help)
    p.add_argument("--limit", type=int, default=0, help="only the last N versions")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_log)

    p = sub.add_parser("diff", help="keys inserted and deleted between two versions")
    p.add_argument("store", metavar="STORE", help=store_help)
    p.add_argument("a", metavar="FROM", help=ref_help)
    p.add_argument("b", metavar="TO", help=ref_help)
    p.add_argument("--keys", type=int, default=0, metavar="N", help="also print up to N keys of each")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("show", help="a version's size, schema and first rows")
    p.add_argument("store", metavar="STORE", help=store_help)
    p.add_argument("version", nargs="?", metavar="VERSION", help=ref_help + " (default: latest)")
    p.add_argument("--columns", metavar="A,B,...", help="comma-separated columns")
    p.add_argument("--filter", metavar="SQL", help="SQL filter, e.g. \"label = 1\"")
    p.add_argument("--limit", type=int, default=10, help="rows to print (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON (NaN and infinities as null)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("tag", help="name a version (or --delete a tag)")
    p.add_argument("store", metavar="STORE", help=store_help)
    p.add_argument("name", metavar="NAME", help="the tag (letters, digits, '_.-')")
    p.add_argument("version", nargs="?", metavar="VERSION", help=ref_help + " (default: latest)")
    p.add_argument("--delete", action="store_true", help="remove the tag instead")
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("tags", help="list the tags and the versions they name")
    p.add_argument("store", metavar="STORE", help=store_help)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_tags)

    p = sub.add_parser("erase", help="erase samples physically (right to erasure)")
    p.add_argument("store", metavar="STORE", help=store_help)
    p.add_argument("keys", nargs="*", metavar="KEY", help="integer keys to erase")
    p.add_argument("--keys-file", metavar="FILE", help="a file with one key per line")
    p.add_argument("--reason", required=True, help="why (kept in the erasure audit log and shown by log)")
    p.add_argument("--missing", choices=["error", "ignore"], default="error",
                   help="what to do with keys never stored or already erased (default: error); "
                        "soft-deleted keys are erased either way")
    p.set_defaults(func=cmd_erase)

    p = sub.add_parser("compact", help="merge small files (versions unchanged)")
    p.add_argument("store", metavar="STORE", help=store_help)
    p.set_defaults(func=cmd_compact)

    p = sub.add_parser("vacuum", help="purge soft-deleted rows old versions no longer need")
    p.add_argument("store", metavar="STORE", help=store_help)
    p.add_argument("--keep-versions", type=int, default=10, help="versions that stay fully readable (default 10)")
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
    args, extra = parser.parse_known_args(argv)
    if extra:
        # keys after an option (`erase STORE --reason R 5`): argparse gives the KEY list its
        # (empty) share at the first positional and leaves later keys unrecognized
        cut = extra.index("--") if "--" in extra else len(extra)  # after '--' every word is a KEY
        named = [*extra[:cut], *extra[cut + 1:]]
        if not isinstance(getattr(args, "keys", None), list) or any(
            e.startswith("-") and not re.fullmatch(r"-[0-9]+", e) for e in extra[:cut]
        ):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.keys = [*args.keys, *named]
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # here, so that a closed pipe is reported below, not at exit
        return status
    except ModynStoreError as exc:
        text = str(exc)
        # a pipeline file's error names its keys as the file spells them, not as flags
        config = sys.modules.get("modyn_store.app.pipeline.errors")
        if config is None or not isinstance(exc, config.PipelineConfigError):
            for api, cli in _CLI_WORDS:
                text = text.replace(api, cli)
        print(f"error: {text}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader stopped early (`modyn-store show STORE | head -1`): stop as other tools do,
        # with no traceback and the status of a process ended by SIGPIPE
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
        print(f"error: {exc.filename!r}: {os_reason(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
