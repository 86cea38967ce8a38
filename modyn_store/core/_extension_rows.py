"""Rows written to an extension table, checked before anything is written: the table's name,
the columns' types against the table (or its owner's declaration), and no erased key stored again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine._search import isin_sorted_numpy as _isin_sorted
from modyn_store.core._catalog_tables import INTERNAL_TABLES, check_declared, holds_samples
from modyn_store.core._ingest import empty_columns
from modyn_store.core._tables import VERSION
from modyn_store.core._validate import check_name
from modyn_store.core.errors import InvalidArgumentError, SchemaMismatchError, UnknownKeyError

if TYPE_CHECKING:
    from modyn_store.core.store import Store

__all__ = ["check_extension"]


def check_extension(store: Store, table: str, data: Any) -> None:
    """Refuse rows for the extension table ``table`` before anything is written: the name
    (not one of the store's own tables), the data (a pyarrow Table), and every column's type
    against the table's (columns it lacks are filled with nulls by Lance; new columns are refused),
    or, for a table not created yet, against the columns its owner declared; and rows naming an
    erased key in an int64 ``key`` column (:class:`UnknownKeyError`, lineage tables excepted). A
    table not created yet refuses a column of type ``null`` (no value in any row): the table would
    hold it as ``null`` for good and refuse every later row with values in it."""
    if table in INTERNAL_TABLES:
        raise InvalidArgumentError("table", table, f"an extension table name, not one of the store's own "
                                   f"tables {sorted(INTERNAL_TABLES)}")
    check_name("table", table)
    if not isinstance(data, pa.Table):
        raise InvalidArgumentError("data", type(data).__name__, "a pyarrow Table")
    ds = store._tables.open(table)
    if ds is None:
        empty = empty_columns(data.schema, skip=(VERSION,))
        if empty:
            kind = data.schema.field(empty[0]).type
            raise SchemaMismatchError(
                f"column {empty[0]!r} of the new extension table {table!r} has type {kind}: "
                "no value in any row, so its type is unknown; the table would hold it as empty for good and refuse "
                "every later row with values in it. Leave the column out (later rows may add it), or give it a "
                "type (e.g. pa.nulls(n, pa.float64()) for a column of missing numbers)")
        check_declared(table, data)
        _refuse_erased(store, table, data)
        return
    have = {f.name: f.type for f in ds.schema}
    wrong = [
        f"{f.name!r} is {f.type}" + (f", the table has {have[f.name]}" if f.name in have else ", the table has no such column")
        for f in data.schema
        if f.name != VERSION and not have.get(f.name, pa.null()).equals(f.type)
    ]
    if wrong:
        raise SchemaMismatchError(f"rows for extension table {table!r} do not match it: " + "; ".join(wrong))
    _refuse_erased(store, table, data)


def _refuse_erased(store: Store, table: str, data: pa.Table) -> None:
    """Refuse rows that name an erased key in the int64 ``key`` column of an extension table
    (whose rows ``erase`` removes, see :func:`modyn_store.core.maintenance.keyed_extensions`):
    the erased sample's data would be stored again. Lineage tables (``selections``) may name them."""
    if not holds_samples(table, data.schema) or data.num_rows == 0:
        return
    col = data.column("key")
    erased = store._erased_keys()
    if erased.size == 0:
        return
    keys = col.drop_null().to_numpy()  # (a null key names no sample)
    hit = _isin_sorted(keys, erased)
    if hit.any():
        bad = np.unique(keys[hit])
        raise UnknownKeyError(
            f"rows for extension table {table!r} name {bad.size} erased keys, e.g. {bad[:5].tolist()}: "
            "an erased sample's rows are not stored again"
        )
