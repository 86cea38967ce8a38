"""Turn a pipeline's ``source`` into a time-ordered table and its chunks (one store version each).

Data paths are never built into scenarios: a source names a data set and, optionally, a path;
without one the data folder comes from the command line (``--data``) or ``$MODYN_STORE_DATA``,
and Elec2 falls back to the copy bundled with the package.

Example
-------
>>> from modyn_store.app.pipeline.config import SourceConfig
>>> from modyn_store.app.pipeline.source import load_source
>>> t = load_source(SourceConfig("elec2", limit=1000))
>>> t.num_rows, t.column_names[:3]
(1000, ['key', 'ts', 'label'])
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store.app.datasets.labels import LabelMap
from modyn_store.core.errors import ModynStoreError
from modyn_store.app.pipeline.config import SYNTHETIC, PipelineConfig, SourceConfig
from modyn_store.app.pipeline.errors import PipelineConfigError

__all__ = [
    "DATA_ENV",
    "LABELS_META",
    "chunk_rule",
    "check_columns",
    "iter_chunks",
    "load_source",
    "model_params",
    "prepare_store",
    "resolve_path",
    "source_labels",
    "replay_store",
    "store_chunks",
]

DATA_ENV = "MODYN_STORE_DATA"
BOW_BUCKETS = 512
USER_CHUNK = "n:1000"
LABELS_META = b"modyn_store.label_map"


def resolve_path(source: SourceConfig, data_dir: str | Path | None = None) -> Path | None:
    """The file or folder to load ``source`` from (``None`` for generated streams and stores)."""
    if source.dataset == SYNTHETIC or source.kind in ("data", "store"):
        return None
    if source.kind == "files":
        assert source.path is not None
        return Path(source.path) if "://" not in source.path else None
    base = data_dir if data_dir is not None else os.environ.get(DATA_ENV) or None
    if base is not None and not Path(base).expanduser().exists():  # a typo never falls back to other data
        raise PipelineConfigError("data_dir", f"{str(base)!r} does not exist; the data folder (--data DIR, "
                                              f"data_dir= or ${DATA_ENV}) must be an existing folder")
    if source.path is not None:
        p = Path(source.path).expanduser()
        if not p.is_absolute() and base is not None:
            p = Path(base) / p
        if not p.exists():
            raise PipelineConfigError("source.path", f"{str(p)!r} does not exist")
        return p
    if base is not None and Path(base).exists():
        return Path(base)
    if source.dataset == "elec2":
        from modyn_store.app.datasets.builtin import bundled_elec2

        return bundled_elec2()
    raise PipelineConfigError(
        "source.path", f"no data for {source.dataset!r}: give source.path, pass --data DIR or set ${DATA_ENV}"
    )


def _hashed_bow(texts: list[str], n_buckets: int) -> pa.Array:
    from training.models import hash_tokens

    tokens, offsets = hash_tokens(texts, n_buckets=n_buckets)
    rows = np.repeat(np.arange(len(texts)), np.diff(np.r_[offsets, tokens.size]))
    counts = np.zeros((len(texts), n_buckets), dtype=np.float32)
    np.add.at(counts, (rows, tokens), 1.0)
    x = np.log1p(counts)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    x = (x / np.maximum(norm, 1e-6)).astype(np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), n_buckets)


def _clicks(table: pa.Table) -> pa.Table:
    dense = np.stack([table.column(f"i{i}").to_numpy() for i in range(1, 14)], axis=1).astype(np.float32)
    sparse = np.stack([table.column(f"c{i}").to_numpy() for i in range(1, 27)], axis=1).astype(np.int64)
    feats = np.log1p(np.maximum(dense, 0)).astype(np.float32)
    n = table.num_rows
    return pa.table({
        "key": table.column("key"), "ts": table.column("ts"), "label": table.column("label"),
        "dense": pa.FixedSizeListArray.from_arrays(pa.array(dense.ravel()), 13) if n else pa.array([], pa.list_(pa.float32(), 13)),
        "sparse": pa.FixedSizeListArray.from_arrays(pa.array(sparse.ravel()), 26) if n else pa.array([], pa.list_(pa.int64(), 26)),
        "features": pa.FixedSizeListArray.from_arrays(pa.array(feats.ravel()), 13) if n else pa.array([], pa.list_(pa.float32(), 13)),
    })


def load_source(source: SourceConfig, data_dir: str | Path | None = None) -> pa.Table:
    """Load (or generate) the stream, apply ``limit``/``fraction``/``encode``/``columns``.

    Raises
    ------
    PipelineConfigError
        The path is missing, the loader rejects ``params``, or a kept column does not exist.
    """
    if source.kind != "dataset":
        return _subset(source, _load_user(source))
    params = dict(source.params)
    try:
        if source.dataset == SYNTHETIC:
            from modyn_store.app.datasets import synthetic_clicks

            table = pa.Table.from_batches(list(synthetic_clicks(**params)))
        else:
            from modyn_store.app.datasets import load

            table = load(str(source.dataset), resolve_path(source, data_dir), **params)
    except PipelineConfigError:
        raise
    except (ModynStoreError, TypeError) as exc:
        raise PipelineConfigError("source.params", str(exc)) from exc
    assert source.dataset is not None
    spec = DATASETS_GET(source.dataset)
    if spec is not None and spec.n_classes is not None:
        table = _with_labels(table, LabelMap("int", tuple(range(spec.n_classes))))
    return _subset(source, table)


def DATASETS_GET(name: str) -> Any:  # noqa: N802
    from modyn_store.app.datasets import DATASETS

    return DATASETS.get(name)


def _with_labels(table: pa.Table, labels: LabelMap | None) -> pa.Table:
    if labels is None:
        return table
    meta = dict(table.schema.metadata or {})
    meta[LABELS_META] = json.dumps({"kind": labels.kind, "values": list(labels.values)}).encode()
    return table.replace_schema_metadata(meta)


def source_labels(table: pa.Table) -> LabelMap | None:
    """The label map a loaded source carries (``None`` where labels are used as they are)."""
    raw = (table.schema.metadata or {}).get(LABELS_META)
    if raw is None:
        return None
    d = json.loads(raw)
    return LabelMap(d["kind"], tuple(d["values"]))


def _load_user(source: SourceConfig) -> pa.Table:
    """Your own data (files or an in-memory object) or a store's live rows, canonical columns."""
    from modyn_store.app.datasets.columns import ColumnMap, SourceError
    from modyn_store.app.datasets.user import read_stream

    if source.kind == "store":
        return _load_store(source)
    try:
        table, labels = read_stream(
            source.data if source.kind == "data" else source.path,
            ColumnMap(ts=source.ts, label=source.label, features=source.features, key=source.key,
                      drop_unlabeled=source.drop_unlabeled, missing=source.missing),
            format=source.format, storage_options=dict(source.storage_options) if source.storage_options else None)
    except SourceError as exc:
        key = exc.key if exc.key not in ("path", "data") else ("data" if source.kind == "data" else "path")
        raise PipelineConfigError(f"source.{key}", exc.message) from exc
    return _with_labels(table, labels)


def _load_store(source: SourceConfig) -> pa.Table:
    from modyn_store.app.datasets.labels import store_classes
    from modyn_store.app.pipeline.source_spec import open_source_store

    try:
        store = open_source_store(source)
        n, labels = store_classes(store)
    except ModynStoreError as exc:
        raise PipelineConfigError("source.store", str(exc)) from exc
    table = store.as_of().to_table(on_unavailable="skip")
    return _with_labels(table, labels or LabelMap("int", tuple(range(n))))


def _subset(source: SourceConfig, table: pa.Table) -> pa.Table:
    meta = table.schema.metadata
    if source.fraction is not None and source.fraction < 1:
        rng = np.random.default_rng(source.seed)
        keep = rng.random(table.num_rows) < source.fraction
        table = table.filter(pa.array(keep))
    if source.limit is not None:
        table = table.slice(0, source.limit)
    if source.encode == "hashed_bow":
        if "text" not in table.column_names:
            raise PipelineConfigError("source.encode", "hashed_bow needs a 'text' column")
        n_buckets = BOW_BUCKETS
        table = table.append_column("features", _hashed_bow(table.column("text").to_pylist(), n_buckets))
    elif source.encode == "ids":
        ids = [c for c in table.column_names if c.endswith("_id") and pa.types.is_integer(table.schema.field(c).type)]
        if not ids or "features" not in table.column_names:
            raise PipelineConfigError("source.encode", "ids needs integer '*_id' columns and a 'features' column")
        sparse = np.stack([table.column(c).to_numpy() for c in ids], axis=1).astype(np.int64)
        table = table.append_column("sparse", pa.FixedSizeListArray.from_arrays(pa.array(sparse.ravel()), len(ids)))
        table = table.append_column("dense", table.column("features"))
    elif source.encode == "clicks":
        missing = [c for c in ("i1", "c1", "label") if c not in table.column_names]
        if missing:
            raise PipelineConfigError("source.encode", f"clicks needs columns i1..i13, c1..c26; missing {missing}")
        table = _clicks(table)
    if source.columns is not None:
        base = [c for c in ("key", "ts", "label") if c in table.column_names]
        for i, c in enumerate(source.columns):
            if c not in table.column_names:
                raise PipelineConfigError(f"source.columns[{i}]", f"no column {c!r}; the data has {table.column_names}")
        table = table.select(list(dict.fromkeys(base + list(source.columns))))
    return table.replace_schema_metadata(meta) if meta else table


def prepare_store(store: Any, table: pa.Table) -> None:
    """Store the label map the loaded source carries (before its rows), unless it is the identity."""
    from modyn_store.app.datasets.labels import write_label_map

    labels = source_labels(table)
    if labels is not None and not labels.identity:
        write_label_map(store, labels, message="label map of the source")


def replay_store(source: SourceConfig, target: Any) -> tuple[Any, list[tuple[int, int, int]]]:
    """The store of a store source and its data versions as chunks; the pipeline runs in that store.

    ``target`` (the store the caller would have used) must be ``None`` or that same store.
    """
    from modyn_store.app.pipeline.source_spec import open_source_store

    store = open_source_store(source)
    if target is not None:
        same = (target.uri == store.uri) if hasattr(target, "uri") else str(target) == str(source.store) or \
            ("://" not in str(target) and Path(str(target)).resolve() == Path(str(source.store)).resolve())
        if not same:
            uri = target.uri if hasattr(target, "uri") else str(target)
            raise PipelineConfigError("--store", f"a store source is replayed in place: its trainings go into "
                                                 f"{source.store}; drop --store (got {uri})")
    return store, store_chunks(store)


def store_chunks(store: Any) -> list[tuple[int, int, int]]:
    """The data versions of ``store`` as ``(rows inserted, start, end)``: each ``(v-1, v]`` that changed rows."""
    return [(r.inserted, r.version - 1, r.version) for r in store.log() if r.inserted or r.deleted or r.erased]


def chunk_rule(source: SourceConfig) -> str:
    """The chunking rule of ``source`` (its own or the data set's default)."""
    if source.chunk is not None:
        return source.chunk
    if source.dataset is None:
        return USER_CHUNK
    if source.dataset == SYNTHETIC:
        return "ts:1"
    from modyn_store.app.datasets import DATASETS

    return DATASETS[source.dataset].default_chunking


def iter_chunks(table: pa.Table, rule: str) -> Iterator[tuple[int, pa.Table]]:
    """``(slice number, rows)`` of ``table`` under ``rule`` (empty slices skipped)."""
    from modyn_store.app.datasets import iter_slices

    yield from iter_slices(table, rule)


def check_columns(cfg: PipelineConfig, schema: pa.Schema, trigger: Any) -> None:
    """Fail with the offending key when a column the pipeline reads is not in the data."""
    names = set(schema.names)
    if "label" not in names:
        raise PipelineConfigError("source.dataset", f"the stream has no 'label' column (columns: {sorted(names)})")
    for arg, col in cfg.model.inputs.items():
        if col not in names:
            raise PipelineConfigError(f"model.inputs.{arg}", f"no column {col!r}; the data has {sorted(names)}")
    for col in getattr(trigger, "columns", ()):
        if col not in names:
            raise PipelineConfigError("trigger.columns", f"no column {col!r}; the data has {sorted(names)}")
    lt = schema.field("label").type
    if not (pa.types.is_integer(lt) or pa.types.is_boolean(lt)):
        raise PipelineConfigError("source.label", f"the 'label' column has type {lt}; a pipeline trains on class "
                                                  "codes: read the data as your own source (label: COLUMN) or "
                                                  "append it with `modyn-store append STORE FILE --label COLUMN`, "
                                                  "which store a label map")
    if "ts" in names and type(trigger).__name__ == "Time":
        dated = pa.types.is_temporal(schema.field("ts").type)
        every = getattr(trigger, "every", None)
        if dated != isinstance(every, str):
            want = "a duration such as '1d'" if dated else "a number in the unit of ts"
            raise PipelineConfigError("trigger.every", f"the event-time column holds {schema.field('ts').type}, so "
                                                       f"every must be {want}, not {every!r}")


def _dense_classes(col: pa.ChunkedArray) -> int:
    """The class count of integer labels ``0 .. n-1``; other labels raise :class:`PipelineConfigError`."""
    import pyarrow.compute as pc

    from modyn_store.app.datasets.labels import label_kind

    try:
        label_kind("label", col.type)
    except ModynStoreError as exc:
        raise PipelineConfigError("source.label", str(exc)) from exc
    values = sorted(pc.unique(col).drop_null().to_pylist())
    if values and values[0] < 0:
        raise PipelineConfigError("source.label", f"labels {values[:6]} include negative classes; give the data as "
                                                  "your own source (path: or data:) so a label map is made")
    return int(values[-1]) + 1 if values else 2


def model_params(cfg: PipelineConfig, table: pa.Table) -> dict[str, Any]:
    """The model's parameters with ``in_features`` and ``n_classes`` filled in from the data."""
    params = dict(cfg.model.params)
    if cfg.model.name in ("mlp", "logreg"):
        col = cfg.model.inputs.get("features", "features")
        t = table.schema.field(col).type
        params.setdefault("in_features", t.list_size if pa.types.is_fixed_size_list(t) else 1)
        check_in_features(params, t)
    known = source_labels(table)
    if known is not None and known.identity:  # a registered data set's classes, or more if its options add some
        classes = max(known.n_classes, _dense_classes(table.column("label")))
    elif known is not None:
        classes = known.n_classes
    else:
        classes = _dense_classes(table.column("label"))
    if "n_classes" not in params:
        params["n_classes"] = max(2, classes)
    elif params["n_classes"] < classes:  # a label past the model's outputs fails inside the loss, mid-run
        raise PipelineConfigError("model.params.n_classes", f"n_classes={params['n_classes']} is fewer than the "
                                  f"{classes} classes of the data (codes 0..{classes - 1}); leave it out to take "
                                  "the data's count")
    if cfg.model.name == "dlrm":
        dlrm_widths(cfg, table.schema, params)
    return params


def check_in_features(params: Mapping[str, Any], t: pa.DataType) -> None:
    """A given ``in_features`` must be the width of the features column (else the first forward pass fails)."""
    if pa.types.is_fixed_size_list(t) and params["in_features"] != t.list_size:
        raise PipelineConfigError("model.params.in_features", f"in_features={params['in_features']} differs from "
                                  f"the width {t.list_size} of the features input; leave it out to take the data's")


def dlrm_widths(cfg: PipelineConfig, schema: pa.Schema | None, params: dict[str, Any]) -> None:
    """``n_dense`` and ``cardinalities`` (1,000 rows per id column) from the widths of the ``dense``
    and ``sparse`` inputs (13 and 26 where a width is not known); given ones must match them."""
    widths: dict[str, int | None] = {}
    for arg in ("dense", "sparse"):
        col = cfg.model.inputs.get(arg, arg)
        t = schema.field(col).type if schema is not None and col in schema.names else None
        widths[arg] = t.list_size if t is not None and pa.types.is_fixed_size_list(t) else None
    params.setdefault("n_dense", widths["dense"] or 13)
    params.setdefault("cardinalities", [1000] * (widths["sparse"] or 26))
    # a width the model does not take fails inside its first forward pass, mid-run
    if widths["dense"] is not None and params["n_dense"] != widths["dense"]:
        raise PipelineConfigError("model.params.n_dense", f"n_dense={params['n_dense']} differs from the width "
                                  f"{widths['dense']} of the dense input; leave it out to take the data's")
    n_ids = len(params["cardinalities"]) if isinstance(params["cardinalities"], (list, tuple)) else None
    if widths["sparse"] is not None and n_ids is not None and n_ids != widths["sparse"]:
        raise PipelineConfigError("model.params.cardinalities", f"{n_ids} tables differ from the "
                                  f"{widths['sparse']} id columns of the sparse input; leave it out to take "
                                  "the data's")
