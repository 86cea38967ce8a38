"""Which source column each slot of a store's ``features`` vector holds (the ``feature_map`` table).

The first :func:`~modyn_store.app.datasets.user.append_stream` into a new store records the
*layout* of ``features``: the feature columns in their order, each with the number of values it
contributes. A later append packs the same columns into the same slots:

- without a ``features`` list, the columns are matched **by name** (a file whose columns come in
  another order is reordered; extra numeric columns are not features);
- an explicit ``features`` list must be the recorded one, in its order;
- a file without one of the recorded columns, or one whose column has another width, is refused.

Refusals raise :class:`~modyn_store.core.errors.InvalidArgumentError` with ``name`` ``"features"``,
listing the recorded order. A store made before layouts were recorded has no ``feature_map``
table: appends to it pack the columns as they are given, as they always did (nothing is checked
or recorded, since the order of its rows is unknown).

``export`` writes the layout into the Parquet file's metadata (:data:`FEATURES_META`); appending
such a file (its ``features`` column used as it is) records or checks that layout, so an imported
copy takes later appends of the raw files as the original does.

Example
-------
>>> import pyarrow as pa
>>> from modyn_store.app.datasets.columns import ColumnMap
>>> schema = pa.schema([("t", pa.int64()), ("z", pa.float64()), ("x", pa.float64())])
>>> fit_columns((("x", 1), ("z", 1)), ColumnMap(ts="t"), schema).features
('x', 'z')
>>> fit_columns((("x", 1), ("z", 1)), ColumnMap(ts="t", features=("z", "x")), schema)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
modyn_store.core.errors.InvalidArgumentError: invalid features=['z', 'x']: expected the store's ...
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pyarrow as pa

from modyn_store.app.datasets.columns import ColumnMap, Encoder
from modyn_store.core._catalog_tables import declare_table
from modyn_store.core.errors import InvalidArgumentError

__all__ = ["FEATURES_META", "FEATURE_MAP_TABLE", "Layout", "check_layout", "fit_columns", "layout_meta",
           "layout_of", "layout_rows", "read_layout"]

FEATURE_MAP_TABLE = "feature_map"
FEATURES_META = b"modyn_store.features"
_SCHEMA = pa.schema([("position", pa.int64()), ("column", pa.string()), ("width", pa.int64())])
declare_table(FEATURE_MAP_TABLE, _SCHEMA, "feature map")

#: ``((column, width), ...)`` in the order of the slots of ``features``
Layout = tuple[tuple[str, int], ...]


def read_layout(store: Any, version: int | None = None) -> Layout | None:
    """The recorded layout of ``store``'s ``features`` (``None``: none recorded)."""
    t = store.read_table(FEATURE_MAP_TABLE, version)
    if t is None or t.num_rows == 0:
        return None
    rows = sorted(t.select(["position", "column", "width"]).to_pylist(), key=lambda r: r["position"])
    return tuple((str(r["column"]), int(r["width"])) for r in rows)


def layout_rows(layout: Layout) -> pa.Table:
    """The ``feature_map`` rows of ``layout``."""
    return pa.table({"position": pa.array(range(len(layout)), pa.int64()),
                     "column": pa.array([c for c, _ in layout], pa.string()),
                     "width": pa.array([w for _, w in layout], pa.int64())}, schema=_SCHEMA)


def layout_meta(layout: Layout) -> dict[bytes, bytes]:
    """Schema metadata recording ``layout`` (what ``export`` writes)."""
    return {FEATURES_META: json.dumps([[c, w] for c, w in layout]).encode()}


def _meta_layout(schema: pa.Schema) -> Layout | None:
    raw = (schema.metadata or {}).get(FEATURES_META)
    if raw is None:
        return None
    try:
        return tuple((str(c), int(w)) for c, w in json.loads(raw))
    except (ValueError, TypeError, RecursionError):
        return None


def _names(layout: Layout) -> list[str]:
    return [c for c, _ in layout]


def _expected(stored: Layout) -> str:
    return (f"the store's feature columns in their recorded order {_names(stored)} (each packed into the same "
            "slots of 'features' as at the store's first append; leave features out to have columns matched by "
            "name)")


def fit_columns(stored: Layout | None, columns: ColumnMap, schema: pa.Schema) -> ColumnMap:
    """``columns`` with the store's recorded feature columns filled in (see the module docstring).

    Raises :class:`InvalidArgumentError` (``name`` ``"features"``) when the source cannot fill
    the recorded slots by name, or an explicit list differs from the recorded one.
    """
    if stored is None:
        return columns
    names = schema.names
    cm = columns.resolved(names)
    want = _names(stored)
    if cm.features is not None:
        given = list(dict.fromkeys(cm.features))
        meta = _meta_layout(schema) if given == ["features"] else None
        if columns.features is None and given == ["features"] and meta is None and given != want:
            # found, not given: a packed column whose slot layout a rewrite of an export dropped
            raise InvalidArgumentError(
                "FILE", "a 'features' column without its slot layout",
                "a file whose 'features' column carries the slot layout `modyn-store export` writes (a tool "
                f"that rewrote the file dropped it), or no 'features' column: the store packs {want} by name")
        if (_names(meta) if meta is not None else given) != want:
            raise InvalidArgumentError("features", list(cm.features), _expected(stored))
        return columns
    missing = [c for c in want if c not in names]
    if missing:
        raise InvalidArgumentError("features", f"column {missing[0]!r} missing from the data (its columns: {names})",
                                   _expected(stored))
    return replace(columns, features=tuple(want))


def layout_of(enc: Encoder, schema: pa.Schema) -> Layout:
    """The layout an encoder packs (call after its first non-empty batch, so list widths are known)."""
    if list(enc.features) == ["features"]:
        meta = _meta_layout(schema)
        if meta is not None and sum(w for _, w in meta) == enc.width:
            return meta
    widths = [w if w is not None else enc.list_width(c) for c, w in zip(enc.features, enc.widths)]
    return tuple((c, int(w)) for c, w in zip(enc.features, widths))


def check_layout(stored: Layout | None, layout: Layout) -> None:
    """Refuse ``layout`` when it packs the recorded columns with other widths."""
    if stored is not None and layout != stored:
        raise InvalidArgumentError("features", [f"{c} ({w} values)" for c, w in layout],
                                   f"the store's feature columns with their recorded widths "
                                   f"{[f'{c} ({w} values)' for c, w in stored]}")
