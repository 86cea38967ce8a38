"""Extension tables whose columns their writer declared, the training catalog's among them.

A transaction may create any extension table, but a table that some reader expects with given
columns (the catalog's ``trainings``, an application's label map) would be unreadable, and,
columns being fixed once a table exists, unwritable for its owner, if rows with other columns
created it first. :func:`declare_table` records the columns; :func:`check_declared` refuses a
first write that does not have them.

Example
-------
>>> import pyarrow as pa
>>> check_declared("trainings", pa.table({"note": ["x"]}))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
modyn_store.core.errors.SchemaMismatchError: extension table 'trainings' is the training catalog's, ...
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from modyn_store.core._tables import VERSION
from modyn_store.core.errors import SchemaMismatchError

__all__ = [
    "EVALUATIONS", "EVALUATIONS_OPTIONAL", "EVALUATIONS_SCHEMA", "INTERNAL_TABLES", "LINEAGE_TABLES", "PLANS",
    "PLANS_SCHEMA", "PLAN_WEIGHTS", "PLAN_WEIGHTS_SCHEMA", "SELECTIONS",
    "SELECTIONS_SCHEMA", "TRAININGS", "TRAININGS_SCHEMA", "check_declared", "declare_table", "holds_samples",
    "may_hold_samples", "sample_keys",
]

#: the store's own tables, written only by its operations: no extension table takes their names
INTERNAL_TABLES = frozenset({"samples", "tombstones", "erasures", "purged", "versions", "tags"})

#: extension tables whose columns their writer declared (:func:`declare_table`):
#: name -> (owner, columns, the columns a new table must have)
_DECLARED: dict[str, tuple[str, pa.Schema, frozenset[str]]] = {}


def declare_table(name: str, schema: pa.Schema, owner: str, required: Iterable[str] | None = None) -> None:
    """Declare the columns of the extension table ``name``, which ``owner`` reads back: a write
    that would create it with other columns (or without one of ``required``, default: all) is
    refused, since the owner could not read it (nor, columns being fixed, ever write it) again."""
    _DECLARED[name] = (owner, schema, frozenset(schema.names if required is None else required))


def check_declared(table: str, data: pa.Table) -> None:
    """Refuse ``data`` as the first rows of the declared table ``table`` unless it has the declared
    columns (their types; the required ones at least); other tables pass."""
    declared = _DECLARED.get(table)
    if declared is None:
        return
    owner, schema, required = declared
    want = {f.name: f.type for f in schema}
    got = {f.name: f.type for f in data.schema if f.name != VERSION}
    if any(not want.get(k, pa.null()).equals(t) for k, t in got.items()) or not required <= got.keys():
        raise SchemaMismatchError(
            f"extension table {table!r} is the {owner}'s, with the columns "
            f"{[f'{f.name}: {f.type}' for f in schema]} ({sorted(required)} required); these rows have "
            f"{[f'{k}: {v}' for k, v in got.items()]}: give them a table of their own")


TRAININGS = "trainings"
SELECTIONS = "selections"
PLANS = "selection_plans"
PLAN_WEIGHTS = "selection_plan_weights"
EVALUATIONS = "evaluations"

TRAININGS_SCHEMA = pa.schema(
    [
        ("training_id", pa.string()),
        ("created", pa.timestamp("us", tz="UTC")),
        ("data_version", pa.int64()),
        ("cutoff_version", pa.int64()),
        ("cutoff_position", pa.int64()),
        ("trigger", pa.string()),
        ("policy", pa.string()),
        ("policy_params", pa.string()),
        ("seed", pa.int64()),
        ("config", pa.string()),
        ("n_keys", pa.int64()),
        ("selection_digest", pa.string()),
        ("checkpoint_uri", pa.string()),
        ("checkpoint_sha256", pa.string()),
        ("parent_id", pa.string()),
        ("update_decision", pa.string()),
        ("metrics", pa.string()),
        ("cost_samples", pa.int64()),
        ("cost_wall_s", pa.float64()),
        ("cost_device_s", pa.float64()),
    ]
)
SELECTIONS_SCHEMA = pa.schema(
    [("training_id", pa.string()), ("key", pa.int64()), ("weight", pa.float64()), ("position", pa.int64())]
)
PLANS_SCHEMA = pa.schema([("training_id", pa.string()), ("lengths", pa.binary()), ("positions", pa.binary())])
#: each epoch plan's weights (float64, the plans' order) where epochs weigh a key differently
PLAN_WEIGHTS_SCHEMA = pa.schema([("training_id", pa.string()), ("weights", pa.binary())])
EVALUATIONS_SCHEMA = pa.schema(
    [
        ("evaluation_id", pa.string()),
        ("model_id", pa.string()),
        ("slice", pa.string()),
        ("slice_start", pa.float64()),
        ("slice_end", pa.float64()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("n", pa.int64()),
        ("data_version", pa.int64()),
        # a sampled evaluation's 95% half-width and the slice's rows (null: written before these
        # columns existed; margin 0 and population == n: the whole slice was evaluated)
        ("margin", pa.float64()),
        ("population", pa.int64()),
    ]
)
#: columns of ``evaluations`` that tables written by earlier releases lack (read back as null)
EVALUATIONS_OPTIONAL = ("margin", "population")

for _name, _schema in ((TRAININGS, TRAININGS_SCHEMA), (PLANS, PLANS_SCHEMA), (PLAN_WEIGHTS, PLAN_WEIGHTS_SCHEMA)):
    declare_table(_name, _schema, "training catalog")
declare_table(EVALUATIONS, EVALUATIONS_SCHEMA, "training catalog",
              required=[n for n in EVALUATIONS_SCHEMA.names if n not in EVALUATIONS_OPTIONAL])
# other trainers may record their train sets here for ``erase`` (see docs/ARCHITECTURE.md)
declare_table(SELECTIONS, SELECTIONS_SCHEMA, "training catalog", required=("training_id", "key"))

#: extension tables whose ``key`` column is lineage (which trainings used a key: identifiers and
#: weights, no sample content): ``erase`` keeps their rows, since its report is read from them.
#: Every other extension table with an int64 ``key`` column loses an erased key's rows.
LINEAGE_TABLES = frozenset({SELECTIONS})


def holds_samples(name: str, schema: pa.Schema) -> bool:
    """Whether the table ``name`` of ``schema`` is an extension table whose rows belong to one
    sample each: an int64 ``key`` column, and neither a store table (:data:`INTERNAL_TABLES`),
    a score table nor a lineage table (:data:`LINEAGE_TABLES`). ``erase`` removes an erased
    key's rows from such tables, reads hide them from the erase's commit on, and writes naming
    an erased key are refused. A ``key`` of another type is not read as the store's keys.

    >>> holds_samples("notes", pa.schema([("key", pa.int64()), ("text", pa.string())]))
    True
    >>> holds_samples("selections", pa.schema([("key", pa.int64())]))
    False
    """
    if not may_hold_samples(name):
        return False
    i = schema.get_field_index("key")
    return i >= 0 and schema.field(i).type.equals(pa.int64())


def may_hold_samples(name: str) -> bool:
    """Whether the table ``name`` may be one :func:`holds_samples` accepts (by its name alone:
    an extension table other than a lineage table)."""
    return not (name in INTERNAL_TABLES or name in LINEAGE_TABLES or name.startswith("scores/"))


def sample_keys(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None]:
    """The int64 ``key`` column of a table :func:`holds_samples` accepts, as NumPy int64 (a
    null read as 0), and which of its values are keys (``None``: all, no nulls). ``to_numpy``
    of a column with nulls gives float64, which rounds keys beyond 2^53 to others.

    >>> values, valid = sample_keys(pa.array([2**53 + 1, None], pa.int64()))
    >>> values.tolist(), valid.tolist()
    ([9007199254740993, 0], [True, False])
    """
    if not column.null_count:
        return np.asarray(column.to_numpy(), dtype=np.int64), None
    return column.fill_null(0).to_numpy(), np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
