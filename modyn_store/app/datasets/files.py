"""Open a user's data for reading in record batches: files, folders, Lance datasets, in-memory objects.

:func:`open_data` accepts

- Parquet, CSV or Arrow IPC (Feather) files, several files, a glob (``data/*.parquet``) or a folder
  of them, on any fsspec file system (``s3://bucket/prefix/``, ``memory://``, local paths), with
  ``storage_options`` in Lance's spelling (as :meth:`modyn_store.Store.open` takes them);
- a Lance dataset (a ``.lance`` folder or ``format="lance"``);
- a pandas DataFrame, a pyarrow Table, RecordBatch or RecordBatchReader (Python only).

It returns a :class:`Data` that knows its schema and (when cheap) its row count, and streams
batches: nothing is loaded whole.

Example
-------
>>> import pyarrow as pa
>>> d = open_data(pa.table({"ts": [1, 2, 3]}))
>>> d.kind, d.count_rows(), [b.num_rows for b in d.batches()]
('table', 3, [3])
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from modyn_store.app.datasets.columns import SourceError
from modyn_store.core.errors import ModynStoreError

__all__ = ["FORMATS", "UNITS_META", "Data", "detect_format", "open_data", "suffix_format", "units_meta"]

FORMATS = ("parquet", "csv", "ipc", "lance")
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".csv.gz": "csv", ".tsv": "csv",
             ".arrow": "ipc", ".ipc": "ipc", ".feather": "ipc", ".lance": "lance"}
STORE_MARKER = "_modyn_store.json"
#: Parquet metadata of an export: its columns of ``timestamp[s]``, which Parquet stores as milliseconds
UNITS_META = b"modyn_store.seconds"


@dataclass
class Data:
    """A readable source: ``schema``, ``count_rows()`` (``None`` when it would need a full read), ``batches()``."""

    kind: str
    schema: pa.Schema
    _count: Callable[[], int | None]
    _batches: Callable[[Sequence[str] | None, int], Iterator[pa.RecordBatch]]
    where: str = ""

    def count_rows(self) -> int | None:
        return self._count()

    def batches(self, columns: Sequence[str] | None = None, batch_size: int = 65_536) -> Iterator[pa.RecordBatch]:
        """The rows in source order, ``columns`` only (default: all)."""
        try:
            yield from self._batches(columns, batch_size)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
            raise SourceError("path", f"reading {self.where or self.kind} failed: {_short(exc)}") from exc


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def suffix_format(path: str) -> str | None:
    """The format a reader takes ``path`` to hold from its name (``None``: the name does not say).

    >>> suffix_format("out.csv"), suffix_format("out.parquet"), suffix_format("out")
    ('csv', 'parquet', None)
    """
    low = path.lower().rstrip("/")
    for suffix, fmt in sorted(_SUFFIXES.items(), key=lambda kv: -len(kv[0])):
        if low.endswith(suffix):
            return fmt
    return None


def units_meta(schema: pa.Schema) -> dict[bytes, bytes]:
    """Schema metadata naming the ``timestamp[s]`` columns of ``schema`` (what ``export`` writes):
    Parquet stores them as milliseconds, and reading the file casts them back to seconds."""
    import json

    seconds = [f.name for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "s"]
    return {UNITS_META: json.dumps(seconds).encode()} if seconds else {}


def _in_seconds(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the columns its :data:`UNITS_META` names as ``timestamp[s]`` again (an
    export's second-precision times; a value that is no whole second fails the read, named)."""
    import json

    raw = (schema.metadata or {}).get(UNITS_META)
    try:
        named = set(json.loads(raw)) if raw else set()
    except (ValueError, TypeError, RecursionError):  # not our metadata: read the file as it is
        return schema
    return pa.schema([f.with_type(pa.timestamp("s", tz=f.type.tz))
                      if f.name in named and pa.types.is_timestamp(f.type) else f for f in schema],
                     metadata=schema.metadata)


def detect_format(paths: Sequence[str], fs: Any) -> str:
    """The format of ``paths`` from their suffixes (or, for a folder, its files' suffixes)."""
    found = set()
    for p in paths:
        fmt = suffix_format(p)
        if fmt is None and fs.isdir(p):
            if fs.exists(f"{p.rstrip('/')}/_versions"):
                fmt = "lance"
            else:
                inner = {f for f in (suffix_format(str(x)) for x in fs.find(p)) if f is not None}
                if len(inner) == 1:
                    fmt = inner.pop()
                elif len(inner) > 1:
                    raise SourceError("format", f"the folder {p!r} holds files of several formats {sorted(inner)}; "
                                                "pick one with format:")
        if fmt is None:
            raise SourceError("format", f"cannot tell the format of {p!r} from its name; give format: one of "
                                        f"{list(FORMATS)}")
        found.add(fmt)
    if len(found) > 1:
        raise SourceError("format", f"the files mix formats {sorted(found)}; read one format at a time")
    return found.pop()


def _access_errors() -> tuple[type[BaseException], ...]:
    """What a file system raises when a path cannot be reached: ``OSError``, and botocore's
    errors (missing credentials, an unreachable endpoint), which s3fs lets through."""
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:
        return (OSError,)
    return (OSError, BotoCoreError)


def _expand(path: str, fs: Any) -> list[str]:
    if any(ch in path for ch in "*?["):
        hits = sorted(fs.glob(path))
        if not hits:
            raise SourceError("path", f"no file matches {path!r}")
        return [str(h) for h in hits]
    if not fs.exists(path):
        raise SourceError("path", f"{path!r} does not exist")
    return [path]


def _files_of(paths: list[str], fs: Any, fmt: str) -> list[str]:
    """The data files of ``paths``; a folder gives its files named for ``fmt`` (``*.parquet`` ...).

    Only a folder without any such file is read whole (every file not starting with ``.`` or ``_``,
    e.g. ``part-00000`` with ``format=``), so a copy such as ``a.parquet.bak`` or a ``README.md``
    next to the data is never read as rows.
    """
    out: list[str] = []
    for p in paths:
        if fs.isdir(p):
            found = sorted(str(f) for f in fs.find(p))
            base = str(fs._strip_protocol(p)).rstrip("/")  # find() answers without the protocol
            named = [f for f in found if suffix_format(f) == fmt and not _hidden(f, base)]
            inner = named or [f for f in found if suffix_format(f) is None and not _hidden(f, base)]
            if not inner:
                raise SourceError("path", f"the folder {p!r} holds no {fmt} files")
            out += inner
        else:
            out.append(p)
    return out


def _hidden(path: str, folder: str) -> bool:
    """True for a file under ``folder`` whose name, or a sub-folder's, starts with ``.`` or ``_``."""
    rel = path[len(folder):] if path.startswith(folder + "/") else path.rsplit("/", 1)[-1]
    return any(part.startswith((".", "_")) for part in rel.strip("/").split("/"))


def open_data(data: Any, *, format: str | None = None, storage_options: dict[str, Any] | None = None) -> Data:
    """Open ``data`` (paths or an in-memory object, see the module docstring) for streaming.

    Raises
    ------
    SourceError
        A path does not exist, the format is unknown, or a folder is a modyn-store store
        (replay those with a store source).
    """
    if format is not None and format not in FORMATS:
        raise SourceError("format", f"unknown format {format!r}; expected one of {list(FORMATS)}")
    mem = _in_memory(data)
    if mem is not None:
        return mem
    paths = [data] if isinstance(data, str) else list(data) if isinstance(data, (list, tuple)) else None
    if not paths or not all(isinstance(p, str) and p for p in paths):
        raise SourceError("path", f"expected a path, a list of paths or a table, got {type(data).__name__}")
    import fsspec

    from modyn_store.core._location import fsspec_options

    scheme = paths[0].split("://", 1)[0] if "://" in paths[0] else "file"
    try:
        fs, _ = fsspec.core.url_to_fs(paths[0], **fsspec_options(scheme, dict(storage_options or {})))
    except ModynStoreError as exc:
        raise SourceError("storage_options", str(exc)) from exc
    try:
        expanded = [e for p in paths for e in _expand(p, fs)]
    except _access_errors() as exc:  # the first request: no endpoint, credentials or permission
        key, hint = ("path", "") if scheme == "file" else (
            "storage_options", "; pass the storage options it needs (endpoint, region, credentials)")
        raise SourceError(key, f"{paths[0]!r} cannot be read ({type(exc).__name__}: {exc}){hint}") from exc
    for p in expanded:
        if fs.isdir(p) and fs.exists(f"{p.rstrip('/')}/{STORE_MARKER}"):
            raise SourceError("path", f"{p!r} is a modyn-store store; read it as a store source (store: {p})")
    fmt = format or detect_format(expanded, fs)
    where = paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1})"
    if fmt == "lance":
        return _lance(expanded, storage_options, where)
    return _arrow_dataset(expanded, fs, fmt, where, storage_options)


def _lance(paths: list[str], storage_options: dict[str, Any] | None, where: str) -> Data:
    import lance

    if len(paths) != 1:
        raise SourceError("path", "give one Lance dataset at a time")
    try:
        ds = lance.dataset(paths[0], storage_options=storage_options)
    except (ValueError, OSError) as exc:
        raise SourceError("path", f"{paths[0]!r} is not a Lance dataset: {_short(exc)}") from exc

    def batches(columns: Sequence[str] | None, size: int) -> Iterator[pa.RecordBatch]:
        yield from ds.to_batches(columns=list(columns) if columns else None, batch_size=size)

    return Data("lance", ds.schema, ds.count_rows, batches, where)


def _arrow_dataset(paths: list[str], fs: Any, fmt: str, where: str, storage_options: dict[str, Any] | None) -> Data:
    import pyarrow.dataset as pds
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    files = _files_of(paths, fs, fmt)
    local = type(fs).__name__ == "LocalFileSystem"
    files = [fs._strip_protocol(f) if not local else f for f in files]
    seen: dict[str, str] = {}
    for f in files:  # a file named twice (by a glob and by name, or inside a folder given too)
        real = os.path.realpath(f) if local else f
        if real in seen:
            raise SourceError("path", f"{f!r} is read more than once (also as {seen[real]!r}): its rows "
                                      f"would be stored twice; name each file once")
        seen[real] = f
    filesystem = None if local else PyFileSystem(FSSpecHandler(fs))
    file_format: Any = {"parquet": "parquet", "ipc": "ipc"}.get(fmt)
    if fmt == "csv":
        file_format = _csv_format(files)
    try:
        dataset = pds.dataset(files, format=file_format, filesystem=filesystem)
        if len(files) > 1:
            dataset = pds.dataset(files, schema=_common_schema(dataset, where), format=file_format,
                                  filesystem=filesystem)
        seconds = _in_seconds(dataset.schema) if fmt == "parquet" else dataset.schema
        if not seconds.equals(dataset.schema):
            dataset = pds.dataset(files, schema=seconds, format=file_format, filesystem=filesystem)
        types = _csv_types_once(files, filesystem, dataset.schema) if fmt == "csv" else {}
        if types:
            file_format = _csv_format(files, types)
            schema = pa.schema([f.with_type(types.get(f.name, f.type)) for f in dataset.schema],
                               metadata=dataset.schema.metadata)
            dataset = pds.dataset(files, schema=schema, format=file_format, filesystem=filesystem)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise SourceError("path", f"cannot read {where!r} as {fmt}: {_short(exc)}") from exc

    def count() -> int | None:
        return None if fmt == "csv" else int(dataset.count_rows())

    schema = _without_pandas_index(dataset.schema)

    def batches(columns: Sequence[str] | None, size: int) -> Iterator[pa.RecordBatch]:
        # little read-ahead: memory stays a few batches whatever the file size
        for b in dataset.to_batches(columns=list(columns) if columns else schema.names, batch_size=size,
                                    batch_readahead=2, fragment_readahead=1):
            if b.num_rows:
                yield b

    return Data(fmt, schema, count, batches, where)


def _without_pandas_index(schema: pa.Schema) -> pa.Schema:
    """``schema`` less the index columns pandas writes (``__index_level_0__``): not data, and
    their names are reserved in a store."""
    import json

    raw = (schema.metadata or {}).get(b"pandas")
    try:
        index = json.loads(raw).get("index_columns", []) if raw else []
    except (ValueError, AttributeError, RecursionError):  # not pandas' metadata: no index to drop
        return schema
    drop = {c for c in index if isinstance(c, str) and c.startswith("__index_level_")}
    return pa.schema([f for f in schema if f.name not in drop], metadata=schema.metadata) if drop else schema


def _csv_format(files: Sequence[str], types: dict[str, pa.DataType] | None = None) -> Any:
    """CSV read options: comma-separated (tab-separated for ``.tsv``), an empty field is missing;
    ``types``: the types of columns the reader's own inference would get wrong."""
    import pyarrow.csv as pcsv
    import pyarrow.dataset as pds

    tabs = {f.lower().endswith(".tsv") for f in files}
    if len(tabs) > 1:
        raise SourceError("path", "the files mix comma- (.csv) and tab-separated (.tsv) text; read one kind at a time")
    return pds.CsvFileFormat(
        # quoted values may span lines (RFC 4180), also across the reader's blocks
        parse_options=pcsv.ParseOptions(delimiter="\t" if tabs.pop() else ",", newlines_in_values=True),
        read_options=pcsv.ReadOptions(block_size=1 << 22),
        # an empty text field is a missing value, as in a number column (not the text "")
        convert_options=pcsv.ConvertOptions(strings_can_be_null=True, column_types=types or {}),
    )


# the types a CSV column is tried in, narrowest first; a column the reader typed from its first
# block is re-typed within a range of them: null (empty in that block) as any, int64 (whole
# numbers there) as int64 or float64 only, so that a later value that is no number keeps the
# reader's own error, which names its row
_CSV_KINDS: tuple[pa.DataType, ...] = (pa.int64(), pa.float64(), pa.bool_(), pa.string())
_CSV_RETYPED = {pa.null(): 3, pa.int64(): 1}  # the widest kind each may become


#: the column types :func:`_csv_column_types` found, per local files and their size and mtime: an
#: append opens its files twice (labels, then rows), and the second need not read them again
_CSV_TYPES_SEEN: dict[tuple[Any, ...], dict[str, pa.DataType]] = {}


def _csv_types_once(files: Sequence[str], filesystem: Any, schema: pa.Schema) -> dict[str, pa.DataType]:
    """:func:`_csv_column_types`, read once per unchanged set of local files (in this process)."""
    if filesystem is not None:  # not local: no cheap identity of the files' content
        return _csv_column_types(files, filesystem, schema)
    import os

    stats = [os.stat(f) for f in files]
    key = (tuple(files), tuple((st.st_size, st.st_mtime_ns, st.st_ino) for st in stats), schema)
    if key not in _CSV_TYPES_SEEN:
        if len(_CSV_TYPES_SEEN) >= 16:
            _CSV_TYPES_SEEN.clear()
        _CSV_TYPES_SEEN[key] = _csv_column_types(files, filesystem, schema)
    return _CSV_TYPES_SEEN[key]


def _csv_column_types(files: Sequence[str], filesystem: Any, schema: pa.Schema) -> dict[str, pa.DataType]:
    """The types of the CSV columns the reader's inference from its first block (4 MiB) would get
    wrong further down: a column typed ``null`` (empty in that block) or ``int64`` (whole numbers
    there, fractions later) is read whole as text and typed by all its values (int64, else
    float64, else, for a null one, bool, else string). Returns only the columns whose type
    changes: a column empty everywhere stays null, one whole everywhere stays int64, and an int64
    one with a value that is no number stays int64 (reading it fails naming the row)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pds

    widest = {f.name: _CSV_RETYPED[f.type] for f in schema if f.type in _CSV_RETYPED}  # index into _CSV_KINDS
    if not widest:
        return {}
    names = list(widest)
    found = {c: 0 for c in names}  # each column's narrowest fitting kind so far
    text = pds.dataset(files, format=_csv_format(files, {c: pa.string() for c in names}), filesystem=filesystem)
    seen = {c: False for c in names}
    for batch in text.to_batches(columns=names):
        for c in names:
            values = batch.column(c).drop_null()
            if not len(values):
                continue
            seen[c] = True
            while found[c] <= widest[c]:
                try:
                    pc.cast(values, _CSV_KINDS[found[c]])
                    break
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    found[c] += 1
    types = {c: _CSV_KINDS[found[c]] if found[c] <= widest[c] else schema.field(c).type
             for c in names if seen[c]}
    return {c: t for c, t in types.items() if t != schema.field(c).type}


def _common_schema(dataset: Any, where: str) -> pa.Schema:
    """The schema every file of ``dataset`` shares: the same columns, types widened to fit all.

    Raises :class:`SourceError` naming a file whose columns differ from the first file's, rather
    than reading its extra columns as nothing or its missing ones as empty.
    """
    fragments = list(dataset.get_fragments())
    schemas = [f.physical_schema for f in fragments]
    first = set(schemas[0].names)
    for frag, schema in zip(fragments[1:], schemas[1:]):
        names = set(schema.names)
        if names != first:
            extra, missing = sorted(names - first), sorted(first - names)
            raise SourceError("path", f"{frag.path!r} has other columns than {fragments[0].path!r} "
                                      f"(extra {extra}, missing {missing}); files read together must have the "
                                      f"same columns ({where})")
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SourceError("path", f"the files of {where!r} give columns of types that do not fit together: "
                                  f"{_short(exc)}") from exc


def _in_memory(data: Any) -> Data | None:
    if type(data).__module__.startswith("pandas") and type(data).__name__ == "DataFrame":
        data = pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        table = data

        def batches(columns: Sequence[str] | None, size: int) -> Iterator[pa.RecordBatch]:
            t = table.select(list(columns)) if columns else table
            yield from t.to_batches(max_chunksize=size)

        return Data("table", table.schema, lambda: table.num_rows, batches, "table")
    if isinstance(data, pa.RecordBatchReader):
        reader = data
        used = [False]

        def once(columns: Sequence[str] | None, size: int) -> Iterator[pa.RecordBatch]:
            if used[0]:
                raise SourceError("data", "a RecordBatchReader can be read once; pass a Table to read it again")
            used[0] = True
            for b in reader:
                yield b.select(list(columns)) if columns else b

        return Data("reader", reader.schema, lambda: None, once, "reader")
    return None
