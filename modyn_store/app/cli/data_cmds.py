"""Data commands of ``modyn-store``: ``append``, ``import``, ``export`` and ``labels``.

- ``append STORE FILE... [--ts COL --label COL --key COL --features A,B]``: stream Parquet, CSV,
  Arrow IPC files (or folders, globs, a Lance dataset, ``s3://`` URLs with ``--storage-option
  KEY=VALUE``, repeated for each key; a key given twice is refused) into a store as one new
  version, with a progress bar; the store is created when it does not exist yet. String
  or gapped integer labels become class codes with a label map kept in the store.
- ``export STORE OUT.parquet [--version V] [--overwrite]``: a version's live rows as one Parquet
  file (labels written back as their original values), written under a temporary name and
  renamed into place; an existing OUT is replaced only with ``--overwrite``, a path in the
  store's folder never, a name that says another format (``out.csv``) never, and an erasure
  that commits while it runs fails it (nothing written). ``timestamp[s]`` columns, which Parquet
  stores as milliseconds, are named in the file's metadata and read back as seconds.
- ``import STORE FILE.parquet``: the rows of an export into a store, keys kept.
- ``labels STORE``: the class codes and the labels they stand for.

Example
-------
>>> from modyn_store.app.cli.main import main
>>> main(["append", "--help"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from modyn_store.app._fmt import Progress, format_table
from modyn_store.core.errors import (
    ConflictError,
    DataUnavailableError,
    DuplicateKeyError,
    InvalidArgumentError,
    NotAStoreError,
)

__all__ = ["register"]

_FLAGS = {"ts": "--ts", "label": "--label", "key": "--key", "features": "--features", "format": "--format",
          "path": "FILE", "data": "FILE", "columns": "FILE", "storage_options": "--storage-option",
          "missing": "--missing"}


def _flag(key: str) -> str:
    base = key.split("[")[0]
    return _FLAGS.get(base, base) + key[len(base):]


def _options(args: argparse.Namespace) -> dict[str, str] | None:
    """``--storage-option KEY=VALUE`` pairs (Lance's spelling, as ``Store.open`` takes them).

    A key given twice is refused (naming it) rather than one of its values silently kept.
    """
    out: dict[str, str] = {}
    for item in getattr(args, "storage_option", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgumentError("--storage-option", item, "KEY=VALUE, e.g. aws_region=us-east-1")
        if key in out:
            raise InvalidArgumentError(f"--storage-option {key}", item,
                                       f"each key once ({key}={out[key]} is already given)")
        out[key] = value
    return out or None


def _new_folder(path: str) -> bool:
    """Whether ``path`` is a local path for a new store: none yet, or an empty folder."""
    local = Path(path) if "://" not in path else None
    return local is not None and (not local.exists() or (local.is_dir() and not any(local.iterdir())))


def _open_or_create(path: str, options: dict[str, str] | None = None) -> Any:
    from modyn_store.app.cli.main import os_reason
    from modyn_store.core.store import Store

    local = Path(path) if "://" not in path else None
    if _new_folder(path):
        try:
            return Store.open(path, create=True, storage_options=options)
        except OSError as exc:
            raise InvalidArgumentError("STORE", path, f"a store folder that can be created ({os_reason(exc)})") \
                from None
    try:
        return Store.open(path, storage_options=options)
    except NotAStoreError:
        if "://" in path and not path.startswith("memory://"):
            return Store.open(path, create=True, storage_options=options)  # an empty object-store prefix
        if local is not None:
            raise InvalidArgumentError("STORE", path, "a store, a new path or an empty folder (this one holds "
                                                      "other files)") from None
        raise


def _columns(args: argparse.Namespace) -> Any:
    from modyn_store.app.datasets.columns import ColumnMap

    feats = tuple(c for c in args.features.split(",") if c) if args.features else None
    return ColumnMap(ts=args.ts, label=args.label, features=feats, key=args.key,
                     drop_unlabeled=bool(getattr(args, "drop_unlabeled", False)),
                     missing=getattr(args, "missing", "zero"))


def _append(store_path: str, files: list[str], args: argparse.Namespace, verb: str) -> int:
    from modyn_store.core._marker import discard_unused

    data: Any = files[0] if len(files) == 1 else files
    options = _options(args)
    made: list[Any] = []

    def make() -> Any:
        made.append(_open_or_create(store_path, options))
        return made[0]

    missing = _missing_folders(store_path)
    try:
        rec, store, dropped = _append_to(store_path, data, args, verb, options, made, make)
    except BaseException:
        if made:  # the store made for this append: a refused first append leaves the path as it was
            try:
                if discard_unused(made[0], remove_folder=bool(missing)):
                    _remove_empty(missing[1:])  # the parent folders made for it
            except OSError as cleanup:  # told, and the append's own error raised below
                print(f"warning: the new store at {store_path} was not removed ({cleanup})", file=sys.stderr)
        raise
    causes = (("without a label", getattr(args, "drop_unlabeled", False)),
              ("with a missing feature value", getattr(args, "missing", "") == "drop_row"))
    why = " or ".join(w for w, on in causes if on)
    skipped = f" ({dropped[0]} rows {why} skipped)" if dropped and dropped[0] else ""
    print(f"{verb}: version {rec.version}, {rec.inserted} rows{skipped}; {rec.live} live rows in {store.uri}")
    return 0


def _missing_folders(path: str) -> list[str]:
    """The local folders that making a store at ``path`` would create: ``path`` first, then each
    missing parent (none for a URI or an existing path)."""
    if "://" in path:
        return []
    out: list[str] = []
    here = os.path.abspath(path)
    while not os.path.exists(here) and os.path.dirname(here) != here:
        out.append(here)
        here = os.path.dirname(here)
    return out


def _remove_empty(folders: list[str]) -> None:
    """Remove ``folders`` (innermost first) up to the first that is not empty."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return  # something else lives there now: it and its parents stay
            raise


def _append_to(store_path: str, data: Any, args: argparse.Namespace, verb: str, options: dict[str, str] | None,
               made: list[Any], make: Callable[[], Any]) -> tuple[Any, Any, list[int]]:
    """The append of :func:`_append`: (its version record, the store, the rows skipped)."""
    from modyn_store.app.datasets.columns import SourceError
    from modyn_store.app.datasets.files import open_data
    from modyn_store.app.datasets.user import append_stream

    try:
        total = open_data(data, format=args.format, storage_options=options).count_rows()
        # a new folder is made only once the files passed the checks before the first write
        store = None if _new_folder(store_path) else _open_or_create(store_path, options)
        bar = Progress(total, verb)
        dropped: list[int] = []

        def on_dropped(n: int) -> None:  # rows read but not written count towards the bar too
            dropped.append(n)
            bar.update(n)

        rec = append_stream(store, data, _columns(args), format=args.format, message=args.message or "",
                            storage_options=options, on_batch=lambda n: bar.update(n), on_dropped=on_dropped,
                            make=make if store is None else None)
        store = store if store is not None else made[0]
        bar.close()
    except SourceError as exc:
        raise SourceError(_flag(exc.key), exc.message) from None
    except InvalidArgumentError as exc:
        if exc.name.split("[")[0] not in _FLAGS:
            raise
        raise InvalidArgumentError(_flag(exc.name), exc.value, exc.expected) from None
    except DuplicateKeyError as exc:
        if not args.key:
            raise
        raise DuplicateKeyError(f"--key: column {args.key!r} must hold each key once, for all time: {exc}; leave "
                                "--key out and the store assigns keys") from exc
    return rec, store, dropped


def cmd_append(args: argparse.Namespace) -> int:
    return _append(args.store, args.files, args, "append")


def cmd_import(args: argparse.Namespace) -> int:
    return _append(args.store, args.files, args, "import")


def _out_location(out: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path) of the export's ``OUT``: a local path or a URI pyarrow knows."""
    import pyarrow.fs as pafs

    if "://" not in out:
        return pafs.LocalFileSystem(), os.path.abspath(out)
    try:
        return pafs.FileSystem.from_uri(out)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidArgumentError("OUT", out, f"a local path or a file URI pyarrow can write ({exc})") from None


def _inside_store(store: Any, fs: Any, path: str) -> bool:
    """Whether ``path`` on ``fs`` lies in the store's folder (symbolic links resolved)."""
    import pyarrow.fs as pafs

    from modyn_store.app.cli.main import store_folder

    root = store_folder(store)
    if isinstance(fs, pafs.LocalFileSystem):
        if "://" in root:
            return False
        r, q = os.path.realpath(root), os.path.realpath(path)
        return q == r or q.startswith(r.rstrip(os.sep) + os.sep)
    if "://" not in root:
        return False
    r, q = root.split("://", 1)[1].strip("/"), path.strip("/")
    return q == r or q.startswith(r + "/")


def _kind(fs: Any, out: str, path: str) -> Any:
    """The ``pyarrow.fs.FileType`` at ``OUT``."""
    from modyn_store.app.cli.main import os_reason

    try:
        return fs.get_file_info(path).type
    except OSError as exc:
        raise InvalidArgumentError("OUT", out, "a writable Parquet file path in an existing folder "
                                               f"({os_reason(exc)})") from None


def _check_out(store: Any, out: str, fs: Any, path: str, overwrite: bool) -> None:
    """Refuse an ``OUT`` in the store's folder, a folder, or (without ``--overwrite``) an existing file."""
    import pyarrow.fs as pafs

    from modyn_store.app.cli.main import store_folder
    from modyn_store.app.datasets.files import suffix_format

    if _inside_store(store, fs, path):
        raise InvalidArgumentError("OUT", out, f"a path outside the store's folder {store_folder(store)} "
                                               "(writing there would damage the store)")
    named = suffix_format(out)
    if named is not None and named != "parquet":  # `import` (and any reader) would read it as `named`
        raise InvalidArgumentError("OUT", out, f"a Parquet file name, ending in .parquet or .pq (export writes "
                                               f"Parquet only; the name says {named})")
    kind = _kind(fs, out, path)
    if kind == pafs.FileType.Directory:
        raise InvalidArgumentError("OUT", out, "a Parquet file path, not a folder")
    if kind != pafs.FileType.NotFound and not overwrite:
        raise InvalidArgumentError("OUT", out, "a path where no file exists yet (pass --overwrite to replace "
                                               "the file)")


def _temp_path(fs: Any, path: str) -> str:
    """A fresh hidden name next to ``path``: the export is written there and renamed into place,
    so a failed or killed export leaves nothing under ``OUT`` (nor replaces what was there)."""
    import secrets

    import pyarrow.fs as pafs

    folder, name = os.path.split(path) if isinstance(fs, pafs.LocalFileSystem) else path.rpartition("/")[::2]
    hidden = f".{name}.{secrets.token_hex(6)}.partial"
    return os.path.join(folder, hidden) if isinstance(fs, pafs.LocalFileSystem) else f"{folder}/{hidden}"


def _discard(fs: Any, path: str) -> None:
    try:
        fs.delete_file(path)
    except OSError:
        pass  # never created, or already gone


def _erasures_since(store: Any, version: int) -> list[int]:
    """Versions of the erasures committed after ``version`` (an erasure applies to every version)."""
    return [r.version for r in store.log(since=version) if r.op == "erase"]


def cmd_export(args: argparse.Namespace) -> int:
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from modyn_store.app.cli.main import os_reason, version_ref
    from modyn_store.app.datasets.feature_map import layout_meta, read_layout
    from modyn_store.app.datasets.files import units_meta
    from modyn_store.app.datasets.labels import label_type, read_label_map
    from modyn_store.core.store import Store

    store = Store.open(args.store, storage_options=_options(args))
    fs, out_path = _out_location(args.out)
    overwrite = bool(getattr(args, "overwrite", False))
    _check_out(store, args.out, fs, out_path, overwrite)
    # every erasure committed after this version may have reached the stream part way: checked
    # again once the file is written, before it is renamed into place
    before = store.version
    snap = store.as_of(version_ref(args.version, "--version"))
    labels = read_label_map(store, snap.version)
    layout = read_layout(store, snap.version)
    schema = snap.schema
    if schema is None:
        raise InvalidArgumentError("STORE", args.store, "a store with rows to export")
    cols = args.columns.split(",") if args.columns is not None else list(schema.names)
    tmp = _temp_path(fs, out_path)
    writer = None
    rows = 0
    bar = Progress(snap.count(), "export")

    def decoded(batch: pa.RecordBatch) -> pa.RecordBatch:
        if labels is not None and "label" in batch.schema.names and not labels.identity:
            i = batch.schema.get_field_index("label")
            values = pa.array(labels.decode(batch.column(i).to_numpy(zero_copy_only=False)),
                              type=label_type(labels.kind))
            batch = batch.set_column(i, "label", values)
        return batch

    def opened(batch_schema: pa.Schema) -> pq.ParquetWriter:
        meta = {b"modyn_store.version": str(snap.version).encode()}
        if layout is not None and "features" in batch_schema.names:
            meta.update(layout_meta(layout))  # which column each slot holds, for `import`
        meta.update(units_meta(batch_schema))  # Parquet has no seconds: `import` casts them back
        try:
            return pq.ParquetWriter(tmp, batch_schema.with_metadata(meta), filesystem=fs)
        except OSError as exc:
            raise InvalidArgumentError("OUT", args.out, "a writable Parquet file path in an existing folder "
                                                        f"({os_reason(exc)})") from None

    done = False
    try:
        try:
            for batch in snap.to_batches(cols):
                batch = decoded(batch)
                if writer is None:
                    writer = opened(batch.schema)
                writer.write_batch(batch)
                rows += batch.num_rows
                bar.update(batch.num_rows)
            if writer is None:  # no live rows: the file still holds the columns
                empty = pa.RecordBatch.from_pylist([], schema=pa.schema([schema.field(c) for c in cols]))
                writer = opened(decoded(empty).schema)
        finally:
            if writer is not None:
                writer.close()
            bar.close()
        # after the last row is written: an erasure that committed while the stream ran may have
        # dropped only part of its keys (the stream applies it from when it sees it on)
        erased = _erasures_since(store, before)
        if erased:
            raise ConflictError(f"an erasure committed while exporting (version {erased[0]}), so the file "
                                f"would hold part of its keys; nothing was written to {args.out}, run the "
                                "export again")
        if not overwrite and _kind(fs, args.out, out_path) != pafs.FileType.NotFound:
            raise InvalidArgumentError("OUT", args.out, "a path where no file exists yet (one was created "
                                                        "while exporting; pass --overwrite to replace it)")
        try:
            fs.move(tmp, out_path)
        except OSError as exc:
            raise InvalidArgumentError("OUT", args.out, f"a Parquet file path that can be replaced "
                                                        f"({os_reason(exc)})") from None
        done = True
    except DataUnavailableError as exc:
        n = 0 if exc.keys is None else len(exc.keys)
        keys = [] if exc.keys is None else list(exc.keys[:5].tolist())
        raise DataUnavailableError(
            f"version {snap.version} cannot be exported: {n} of its rows were purged by vacuum (e.g. keys "
            f"{keys}); nothing was written to {args.out}. Export a later version instead (`modyn-store show "
            f"{args.store} VERSION` prints how many rows of a version were purged)", keys=exc.keys) from None
    finally:
        if not done:
            _discard(fs, tmp)
    print(f"exported version {snap.version} ({rows} rows, columns {cols}) to {args.out}")
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    import json

    from modyn_store.app.datasets.labels import store_classes
    from modyn_store.core.store import Store

    store = Store.open(args.store)
    n, labels = store_classes(store)
    rows = [{"code": i, "label": labels.values[i] if labels is not None else i} for i in range(n)]
    if args.json:
        print(json.dumps({"classes": n, "mapped": labels is not None, "labels": rows}))
    else:
        print(f"{n} classes" + ("" if labels is not None else " (labels stored as they are, no label map)"))
        print(format_table(rows))
    return 0


def _mapping_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ts", metavar="COL", help="event-time column (integer, float, date, timestamp or ISO text); "
                                               "default: a 'ts' column, else row order")
    p.add_argument("--label", metavar="COL", help="label column (integers, strings or booleans); default: a "
                                                    "'label' column")
    p.add_argument("--key", metavar="COL", help="unique integer key column; default: a 'key' column, else keys "
                                                "are assigned")
    p.add_argument("--features", metavar="A,B,...", help="comma-separated feature columns (numbers or fixed-size "
                                                         "lists), packed into 'features'; default: every numeric column "
                                                         "(on a later append: the store's, matched by name)")
    p.add_argument("--format", choices=["parquet", "csv", "ipc", "lance"], help="file format when the suffix does "
                                                                               "not tell")
    p.add_argument("--drop-unlabeled", action="store_true", help="skip rows without a label (default: refuse "
                                                                   "the file and write nothing)")
    p.add_argument("--missing", choices=["zero", "drop_row", "error"], default="zero",
                   help="a missing (empty, null or NaN) feature value: 0 in the feature's units (zero, the "
                        "default), skip its row (drop_row), or refuse the file naming the row (error)")
    p.add_argument("--message", help="text for the version log")
    _storage_arg(p)


def _storage_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                   help="object-store option for the files and the store (repeat it, once per key: a key "
                        "given twice is refused), in Lance's spelling, e.g. aws_endpoint=http://localhost:9000 "
                        "(with allow_http=true)")


def register(sub: Any) -> None:
    """Add ``append``, ``import``, ``export`` and ``labels`` to the ``modyn-store`` sub-commands."""
    p = sub.add_parser("append", help="stream files into a store as one new version")
    p.add_argument("store", metavar="STORE", help="store folder or URL (created when the folder does not exist)")
    p.add_argument("files", metavar="FILE", nargs="+", help="Parquet/CSV/Arrow files, folders, globs or a Lance "
                                                            "dataset (local or s3://...)")
    _mapping_args(p)
    p.set_defaults(func=cmd_append)

    p = sub.add_parser("import", help="load a Parquet export (keys kept) into a store")
    p.add_argument("store", metavar="STORE", help="store folder or URL (created when the folder does not exist)")
    p.add_argument("files", metavar="FILE", nargs="+", help="Parquet files written by export")
    _mapping_args(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="write a version's live rows to a Parquet file")
    p.add_argument("store", metavar="STORE", help="store folder or URL")
    p.add_argument("out", metavar="OUT", help="the Parquet file to write")
    p.add_argument("--version", help="version number, tag or ISO time with a time of day (without an offset: "
                   "local time; a date alone is refused; default: latest)")
    p.add_argument("--columns", metavar="A,B,...", help="comma-separated columns (default: all)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT when it exists (default: refuse); "
                                                            "a path in the store's folder is refused either way")
    _storage_arg(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("labels", help="the class codes of a store's labels and the values they stand for")
    p.add_argument("store", metavar="STORE", help="store folder or URL")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_labels)
