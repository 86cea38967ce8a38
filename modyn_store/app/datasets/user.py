"""A user's own stream: read it whole for a replay (:func:`read_stream`) or append it to a store
in a streamed pass (:func:`append_stream`).

Both check the whole mapping against the source's schema and scan the event-time, label and key
columns before anything is written, so a bad input (missing column, string event times that are
not dates, rows without a label or key) leaves the store as it was.

Example
-------
>>> import pyarrow as pa
>>> from modyn_store import Store
>>> from modyn_store.app.datasets.columns import ColumnMap
>>> t = pa.table({"day": [3, 1, 2], "y": ["rain", "sun", "sun"], "mm": [4.0, 0.0, 0.5]})
>>> table, labels = read_stream(t, ColumnMap(ts="day", label="y"))
>>> table.column("ts").to_pylist(), table.column("label").to_pylist(), labels.values
([1, 2, 3], [1, 1, 0], ('rain', 'sun'))
>>> store = Store.open("memory://user-doc", create=True)
>>> append_stream(store, t, ColumnMap(ts="day", label="y")).inserted
3
>>> from modyn_store.app.datasets.labels import read_label_map
>>> read_label_map(store).values
('rain', 'sun')
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modyn_store.app.datasets.columns import ColumnMap, Encoder, SourceError, text_times
from modyn_store.app.datasets.feature_map import (
    FEATURE_MAP_TABLE,
    check_layout,
    fit_columns,
    layout_of,
    layout_rows,
    read_layout,
)
from modyn_store.app.datasets.files import Data, open_data
from modyn_store.app.datasets.labels import (
    LABEL_MAP_TABLE,
    LabelMap,
    accepts,
    label_kind,
    new_label_rows,
    read_label_map,
    stored_code_map,
)
from modyn_store.core._ingest import empty_columns
from modyn_store.core.errors import InvalidArgumentError, ModynStoreError, SchemaMismatchError

__all__ = ["append_stream", "read_stream", "scan_labels"]


def scan_labels(data: Data, columns: ColumnMap, base: LabelMap | None = None) -> LabelMap | None:
    """Read the label, event-time and key columns once: the label map, and early errors.

    Raises :class:`SourceError` for rows without a label, key or event time, and for event-time
    strings that are not dates, before anything is written. Rows the append skips (no label with
    ``drop_unlabeled``, a missing feature value with ``missing="drop_row"``) are not checked, and
    their labels are not in the map.
    """
    cm = columns.resolved(data.schema.names)
    if cm.label is not None and cm.label in data.schema.names and pa.types.is_null(data.schema.field(cm.label).type):
        where = f" of {data.where}" if data.where else ""
        if not any(b.num_rows for b in data.batches([cm.label])):  # a header and no rows: every column is null
            raise SourceError("path", f"{data.where or 'the data'} holds no rows")
        raise SourceError("label", f"label column {cm.label!r}{where} has no values: every row's label is empty "
                                   "(is it the label column?)")
    enc = Encoder(data.schema, cm, labels=base or (LabelMap("int", ()) if cm.label else None))  # schema checks
    wanted = [c for c in dict.fromkeys([cm.label, cm.ts, cm.key]) if c is not None]
    if not wanted:
        return None
    # rows the encoder skips for a missing feature value need no time, key or label either
    drop_incomplete = cm.missing == "drop_row"
    if drop_incomplete:
        wanted += [c for c in enc.features if c not in wanted]
    labels = base
    zone: str | None = None
    kind = label_kind(cm.label, data.schema.field(cm.label).type) if cm.label else None
    if base is not None and kind is not None and not accepts(base.kind, kind, base.values):
        raise SourceError("label", f"column {cm.label!r} holds {kind} labels but the store's labels are "
                                   f"{base.kind}s ({list(base.values[:5])}); convert the column to match")
    offset = 0  # source rows before this batch
    for batch in data.batches(wanted):
        rows = pa.array(range(offset, offset + batch.num_rows), pa.int64())  # each row's number in the source
        offset += batch.num_rows
        if cm.label is not None and cm.drop_unlabeled and batch.column(cm.label).null_count:
            valid = pc.is_valid(batch.column(cm.label))
            batch, rows = batch.filter(valid), rows.filter(valid)  # skipped rows need no time or key
        if drop_incomplete and batch.num_rows and (gaps := enc.incomplete_rows(batch)).any():
            keep = pa.array(~gaps)
            batch, rows = batch.filter(keep), rows.filter(keep)
        for role, col in (("ts", cm.ts), ("key", cm.key)):
            if col is not None and batch.column(col).null_count:
                first = rows[pc.index(pc.is_null(batch.column(col)), True).as_py()].as_py()
                what = "an event time" if role == "ts" else "a key"
                raise SourceError(role, f"column {col!r} has empty rows, the first at row {first} of "
                                        f"{data.where or 'the data'} (data rows counted from 0 across the files "
                                        f"read): every row needs {what}; fill it or drop the row")
        if cm.ts is not None and pa.types.is_floating(batch.schema.field(cm.ts).type):
            bad = pc.sum(pc.invert(pc.is_finite(batch.column(cm.ts)))).as_py() or 0
            if bad:
                raise SourceError("ts", f"column {cm.ts!r} has {bad} NaN or infinite event times")
        if cm.ts is not None and (pa.types.is_string(batch.schema.field(cm.ts).type)
                                  or pa.types.is_large_string(batch.schema.field(cm.ts).type)):
            _, zone = text_times(batch.column(cm.ts), cm.ts, zone)
        if cm.label is not None:
            col = batch.column(cm.label)
            if cm.drop_unlabeled:
                col = col.drop_null()
            try:
                labels = LabelMap.from_values(col, column=cm.label) if labels is None else labels.extend(col, column=cm.label)
            except ModynStoreError as exc:
                raise SourceError("label", str(exc)) from exc
    if cm.label is not None and labels is None:  # not one batch: a file with columns and no rows
        raise SourceError("path", f"{data.where or 'the data'} holds no rows")
    return labels


def _widens(src: pa.DataType, dst: pa.DataType) -> bool:
    """True when every value of ``src`` is a value of ``dst`` (a file's column read narrower than the store's)."""
    if pa.types.is_null(src):
        return True
    if pa.types.is_integer(src):
        return pa.types.is_floating(dst) or pa.types.is_integer(dst)
    if pa.types.is_floating(src):
        return pa.types.is_floating(dst) and dst.bit_width >= src.bit_width
    if pa.types.is_timestamp(src) and pa.types.is_timestamp(dst):
        # CSV reads seconds, Parquet keeps ms or finer: any unit, when every value converts exactly
        # (the cast is checked); another time zone is another type
        return src.tz == dst.tz
    text = (pa.types.is_string, pa.types.is_large_string)
    if pa.types.is_dictionary(src) or pa.types.is_dictionary(dst):
        # dictionary-encoded text (pandas' categoricals) and plain text hold the same values; the
        # index width depends on how many distinct values a file had (the cast is checked)
        src_v = src.value_type if pa.types.is_dictionary(src) else src
        dst_v = dst.value_type if pa.types.is_dictionary(dst) else dst
        return any(f(src_v) for f in text) and any(f(dst_v) for f in text)
    return any(f(src) for f in text) and any(f(dst) for f in text)


def _inexact(col: pa.Array, want: pa.DataType, exc: Exception) -> str:
    """Why ``col`` (timestamps) does not convert exactly to ``want``: its first value finer than
    ``want``'s unit, or out of its range."""
    try:
        back = pc.cast(pc.cast(col, want, safe=False), col.type)
        off = pc.fill_null(pc.not_equal(back, col), False).to_numpy(zero_copy_only=False)
        if off.any():
            return (f"the value {col[int(off.argmax())]} is finer than the store's unit ({want.unit}); "
                    f"round the times to whole {_UNIT_NAMES[want.unit]}")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    return f"a value does not fit the store's type ({exc})"


def _distinct(col: pa.Array) -> int:
    """How many distinct values ``col`` holds (a dictionary column: of its dictionary)."""
    return len(pc.unique(col.dictionary if isinstance(col, pa.DictionaryArray) else col))


_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}


def _conform(batch: pa.RecordBatch, schema: pa.Schema | None) -> pa.RecordBatch:
    """``batch`` with the columns whose type is narrower than the store's cast to the store's type.

    A later CSV file reads a column of whole numbers as integers, or an empty column as nulls,
    where the store holds floats or text; a cast that would change a value is left to the store
    to refuse. Timestamps of another unit are cast when every value converts exactly (a CSV's
    seconds, an export's milliseconds); one finer than the store's unit is refused here, named.
    """
    if schema is None:
        return batch
    cols = []
    for field, col in zip(batch.schema, batch.columns):
        i = schema.get_field_index(field.name)
        want = schema.field(i).type if i >= 0 else None
        if want is not None and not field.type.equals(want) and _widens(field.type, want):
            try:
                col = pc.cast(col, want, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                if pa.types.is_timestamp(field.type):
                    raise SchemaMismatchError(
                        f"appended data does not match the store's schema: column {field.name!r} is {field.type}, "
                        f"the store has {want}, and {_inexact(col, want, exc)}"
                    ) from None
                if pa.types.is_dictionary(want):
                    raise SchemaMismatchError(
                        f"appended data does not match the store's schema: column {field.name!r} is {field.type}, "
                        f"the store has {want}, whose {want.index_type} indices cannot number the "
                        f"{_distinct(col)} distinct values of a block of {len(col)} rows ({exc}); store the "
                        "column in a new store as plain text, or with wider indices"
                    ) from None
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


def _widen_empty(src: Data, target: pa.Schema | None, cm: ColumnMap) -> Data:
    """``src`` with its empty columns (read as type ``null``: a CSV column without a value) read as
    the store's type of that column, all values missing, so that a feature column is packed as
    missing values (0) and kept as nulls, as in a file where only some values are missing. The
    event-time, label and key columns keep their own checks."""
    if target is None:
        return src
    roles = {c for c in (cm.ts, cm.label, cm.key) if c is not None} | {"key", "ts", "label", "features"}
    wide = {f.name: target.field(f.name).type for f in src.schema
            if pa.types.is_null(f.type) and f.name not in roles and f.name in target.names}
    if not wide:
        return src
    schema = pa.schema([f.with_type(wide[f.name]) if f.name in wide else f for f in src.schema],
                       metadata=src.schema.metadata)

    def batches(cols: Sequence[str] | None, size: int) -> Iterator[pa.RecordBatch]:
        for b in src.batches(cols, size):
            arrays = [pa.nulls(b.num_rows, wide[n]) if n in wide else c for n, c in zip(b.schema.names, b.columns)]
            yield pa.RecordBatch.from_arrays(arrays, schema=pa.schema([schema.field(n) for n in b.schema.names]))

    return replace(src, schema=schema, _batches=batches)


def _refuse_empty_columns(src: Data, cm: ColumnMap) -> None:
    """Refuse a column without a value in any row (type ``null``) at a store's first append: the
    store would hold it as ``null`` for good, and refuse every later file with values in it."""
    empty = empty_columns(src.schema, skip={c for c in (cm.ts, cm.label, cm.key) if c is not None})
    if empty:
        raise SourceError("path", f"column {empty[0]!r} of {src.where} has no value in any row, so its type is "
                                  f"unknown; a new store would hold it as empty (type null) and refuse every later "
                                  f"file with values in it. Leave the column out, or append it together with "
                                  f"files that hold its values (files read together are typed by all their values)")


def _all_skipped(enc: Encoder) -> str:
    """Why a source with rows left none to store: each was skipped (unlabelled or incomplete)."""
    parts = [f"{n} {what}" for n, what in ((enc.dropped, "without a label (drop_unlabeled)"),
                                           (enc.incomplete, "with a missing feature value (missing='drop_row')")) if n]
    return f" to store: every row was skipped, {' and '.join(parts)}" if parts else ""


def read_stream(data: Any, columns: ColumnMap, *, format: str | None = None,
                storage_options: dict[str, Any] | None = None, require_label: bool = True) -> tuple[pa.Table, LabelMap | None]:
    """The whole stream as one table in event-time order, keys numbered by source row when unmapped.

    Returns the canonical table (see :mod:`~modyn_store.app.datasets.columns`) and its label map.
    """
    src = open_data(data, format=format, storage_options=storage_options)
    cm = columns.resolved(src.schema.names)
    if require_label and cm.label is None:
        raise SourceError("label", f"no label column: name one (the data has {src.schema.names})")
    labels = scan_labels(src, cm)
    enc = Encoder(src.schema, cm, labels=labels, assign_keys=True, require_label=require_label)
    batches = [e for e in (enc.encode(b) for b in src.batches()) if e.num_rows]
    if not batches:
        raise SourceError("path", f"{src.where} holds no rows{_all_skipped(enc)}")
    table = pa.Table.from_batches(batches).combine_chunks()
    if cm.key is not None:  # found here, not after some chunks of a pipeline were stored
        keys = pc.sort_indices(table.column("key"))
        sorted_keys = table.column("key").take(keys).to_numpy()
        same = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
        if same.size:
            raise SourceError("key", f"column {cm.key!r} holds {np.unique(sorted_keys[same + 1]).size} keys more "
                                     f"than once, e.g. {np.unique(sorted_keys[same + 1])[:5].tolist()}; keys must "
                                     "be unique (leave key out and rows are numbered)")
    order = pc.sort_indices(table, sort_keys=[("ts", "ascending"), ("key", "ascending")])
    return table.take(order).combine_chunks(), labels


class _Unmade:
    """A new store not made yet, as :func:`append_stream` reads it: no tables, no schema."""

    schema = None

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def read_table(self, name: str, version: int | None = None) -> None:
        return None


def append_stream(store: Any, data: Any, columns: ColumnMap, *, format: str | None = None,
                  storage_options: dict[str, Any] | None = None, message: str = "",
                  on_batch: Callable[[int], None] | None = None, batch_size: int = 65_536,
                  on_dropped: Callable[[int], None] | None = None,
                  make: Callable[[], Any] | None = None) -> Any:
    """Append a stream to ``store`` as one version, batch by batch (never loaded whole).

    ``make``: instead of ``store`` (pass None), a function that creates a new store, called only
    once the source's columns and first batch passed every check, so that a source refused
    before that leaves no store behind. Should the store it returns hold a version already
    (another process made it first), the append starts again against that store.

    String or gapped integer labels are stored as class codes; the store's label map gains the new
    values in the same version, so a failed append leaves both unchanged. The first append records
    which column each slot of ``features`` holds; later ones pack the same columns into the same
    slots, matched by name (see :mod:`~modyn_store.app.datasets.feature_map`). ``on_batch`` is called with the rows of each batch
    written (for a progress bar); ``on_dropped`` once at the end with the rows skipped for having
    no label (``columns.drop_unlabeled``) or a missing feature value (``columns.missing="drop_row"``).
    Returns the append's :class:`~modyn_store.core.records.VersionRecord`.
    """
    if (store is None) == (make is None):
        raise InvalidArgumentError("store", store, "a store, or None with make (a function that creates one)")
    if make is not None:
        store = _Unmade("a new store")
    src = open_data(data, format=format, storage_options=storage_options)
    stored = read_layout(store)
    src = _widen_empty(src, store.schema, columns.resolved(src.schema.names))  # an empty column: all missing
    columns = fit_columns(stored, columns, src.schema)  # the recorded feature columns, matched by name
    cm = columns.resolved(src.schema.names)
    old = read_label_map(store)
    known = True  # whether every code the store ever used is in ``old``
    if cm.label is not None and old is None and store.schema is not None and "label" in store.schema.names:
        # labels stored without a map are their own codes: every code any stored row holds, at
        # any version (deleted rows included), keeps its label
        old, known = stored_code_map(store)
    labels = scan_labels(src, cm, old)
    if not known and old is not None and labels is not None and labels.n_classes > old.n_classes:
        new = list(labels.values[old.n_classes:])
        raise SourceError(
            "label",
            f"labels {new[:5]} of column {cm.label!r} would get the class codes {old.n_classes} and up, but "
            f"the store {store.uri} has no label map and erase or vacuum removed rows whose labels it no longer "
            "knows: those codes may have stood for other labels. Give the store a label map first "
            "(modyn_store.app.datasets.labels.write_label_map, naming the label of every code it used) or "
            "ingest into a new store",
        )
    enc = Encoder(src.schema, cm, labels=labels)
    target = store.schema
    it = (_conform(e, target) for e in (enc.encode(b) for b in src.batches(batch_size=batch_size)) if e.num_rows)
    first = next(it, None)
    if first is None:
        raise SourceError("path", f"{src.where} holds no rows{_all_skipped(enc)}")
    if target is None:
        _refuse_empty_columns(src, cm)
    layout = layout_of(enc, src.schema)
    check_layout(stored, layout)
    extra: dict[str, pa.Table] = {}
    label_rows = new_label_rows(store, labels) if labels is not None else None
    if label_rows is not None:
        extra[LABEL_MAP_TABLE] = label_rows
    if stored is None and target is None:  # a new store: record which column each slot holds
        extra[FEATURE_MAP_TABLE] = layout_rows(layout)
    if make is not None:
        store = make()
        if store.version != 0:  # made by another process meanwhile: check against what it holds
            return append_stream(store, data, columns, format=format, storage_options=storage_options,
                                 message=message, on_batch=on_batch, batch_size=batch_size,
                                 on_dropped=on_dropped)

    failed: list[BaseException] = []

    def counted() -> Iterator[pa.RecordBatch]:
        try:
            for b in itertools.chain((first,), it):
                yield b
                if on_batch is not None:
                    on_batch(b.num_rows)
        except Exception as exc:  # kept: the source's error, told apart from the store's own
            failed.append(exc)
            raise

    reader = pa.RecordBatchReader.from_batches(first.schema, counted())
    try:
        rec = store.append(
            reader,
            message=message or f"append {src.where}",
            tables=extra or None,
        )
    except Exception:
        if not failed:
            raise
        cause = failed[0]  # the source's own error (the store re-raises it), named as the source's
        if isinstance(cause, (pa.ArrowException, OSError)) and not isinstance(cause, ModynStoreError):
            raise SourceError("path", f"reading {src.where} failed: {cause}") from cause
        raise cause from None
    if on_dropped is not None:
        on_dropped(enc.dropped + enc.incomplete)
    return rec
