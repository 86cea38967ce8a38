"""Validation of a pipeline's ``source`` section (all three kinds: data set, your own data, a store).

Your own data is checked against its schema while the definition is parsed (file footers and
the first CSV block only), so a missing column, a label of the wrong type or a time trigger whose
unit does not fit the event-time column fails before any work, naming the key and its YAML line.

Example
-------
>>> import pyarrow as pa
>>> from modyn_store.app.pipeline.config import parse_pipeline
>>> t = pa.table({"t": [1, 2, 3], "y": ["a", "b", "a"], "x": [0.1, 0.2, 0.3]})
>>> cfg = parse_pipeline({"name": "p", "source": {"data": t, "ts": "t", "label": "y"},
...                       "model": {"name": "logreg"}, "trigger": {"name": "data_amount", "every": 2}})
>>> cfg.source.kind, cfg.source.ts
('data', 't')
>>> parse_pipeline({"name": "p", "source": {"data": t, "ts": "t", "label": "y"},
...                 "model": {"name": "logreg"}, "trigger": {"name": "time", "every": "1d"}})
Traceback (most recent call last):
...
modyn_store.app.pipeline.errors.PipelineConfigError: trigger.every: the event-time column 't' holds numbers (int64), so every must be a number in its unit, not '1d'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from modyn_store.app.pipeline.checks import _Ctx, _fraction, _mapping, _names, _typed
from modyn_store.core.errors import ModynStoreError

__all__ = ["ENCODINGS", "SYNTHETIC", "USER_KEYS", "SourceConfig", "check_trigger_units", "open_source_store",
           "parse_source", "peek_schema"]

SYNTHETIC = "synthetic_clicks"
ENCODINGS = ("hashed_bow", "clicks", "ids")

@dataclass(frozen=True)
class SourceConfig:
    """Where the stream comes from and how it is cut into store versions.

    Three kinds of source (exactly one):

    - a registered data set: ``dataset`` is a name of :data:`modyn_store.app.datasets.DATASETS` or
      ``"synthetic_clicks"``; ``path`` its file or folder (``None``: the data folder given on the
      command line or in ``$MODYN_STORE_DATA``; Elec2 falls back to the copy bundled with the
      package); ``params`` loader or generator options; ``encode`` an extra encoding
      (``hashed_bow``: a ``features`` bag of hashed words from ``text``; ``clicks``:
      ``dense``/``sparse``/``features`` columns from click logs; ``ids``: ``sparse`` from the
      integer ``*_id`` columns and ``dense`` from ``features``).
    - your own data: ``path`` (Parquet, CSV or Arrow IPC files, a glob, a folder, a Lance dataset;
      any fsspec URL such as ``s3://``; relative paths are relative to the pipeline file), or
      ``data`` (Python only: a pandas DataFrame or pyarrow Table); ``format`` when the suffix does
      not tell; ``storage_options`` for object stores; the column mapping ``ts`` (event time;
      absent: row order), ``label`` (integers or strings), ``features`` (columns packed into the
      ``features`` vector; absent: every numeric column) and ``key`` (absent: row numbers);
      ``drop_unlabeled`` skips rows without a label (default: they are an error); ``missing``
      what a missing (empty, null or NaN) feature value becomes: ``zero`` (default: 0 in the
      feature's own units), ``drop_row`` (the row is skipped) or ``error`` (refused, naming the
      column and the row).
    - an existing modyn-store store: ``store`` (its versions are replayed as they were committed;
      ``run --online`` follows it), a folder or a URL such as ``s3://``, with ``storage_options``
      for object stores (as :meth:`modyn_store.Store.open` takes them).

    For every kind: ``chunk`` a chunking rule (one store version per chunk; ``None``: the data
    set's default, one version per 1000 rows for your own data); ``limit`` keeps the first rows,
    ``fraction`` a uniform share of the rows seeded by ``seed`` (time order kept; applied before
    ``limit``; a ``seed`` other than 0 without ``fraction`` is refused);
    ``columns`` the payload columns kept besides key/ts/label.
    """

    dataset: str | None = None
    path: str | None = None
    chunk: str | None = None
    limit: int | None = None
    fraction: float | None = None
    columns: tuple[str, ...] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    encode: str | None = None
    seed: int = 0
    format: str | None = None
    ts: str | None = None
    label: str | None = None
    features: tuple[str, ...] | None = None
    key: str | None = None
    store: str | None = None
    storage_options: Mapping[str, Any] | None = None
    drop_unlabeled: bool = False
    missing: str = "zero"
    data: Any = field(default=None, compare=False, repr=False)

    @property
    def kind(self) -> str:
        """``"dataset"``, ``"files"``, ``"data"`` (an in-memory object) or ``"store"``."""
        if self.dataset is not None:
            return "dataset"
        if self.store is not None:
            return "store"
        return "data" if self.data is not None else "files"

    @property
    def label_text(self) -> str:
        """A short name of the source for messages and version logs."""
        if self.dataset is not None:
            return self.dataset
        if self.store is not None:
            return f"store {self.store}"
        return "in-memory data" if self.data is not None else str(self.path)


USER_KEYS = ("format", "ts", "label", "features", "key", "storage_options", "data", "drop_unlabeled", "missing")
DATASET_KEYS = ("params", "encode")
#: Keys that shape a replayed stream, which a store source does not have (its versions are replayed).
STORE_IGNORED = ("chunk", "limit", "fraction", "columns")


def _relative(ctx: _Ctx, path: str) -> str:
    """A relative local path is relative to the pipeline file (when there is one)."""
    if "://" in path or Path(path).is_absolute() or ctx.doc is None or not ctx.doc.source:
        return path
    base = Path(ctx.doc.source).parent
    return str(base / path) if str(base) not in ("", ".") else path


def parse_source(ctx: _Ctx, raw: Any) -> SourceConfig:
    """Validate ``source`` (see :class:`~modyn_store.app.pipeline.config.SourceConfig`)."""
    from modyn_store.app.datasets import DATASETS
    from modyn_store.app.datasets.chunking import chunk_index
    from modyn_store.app.datasets.columns import MISSING

    p = ("source",)
    d = _mapping(ctx, p, raw, _names(SourceConfig))
    kinds = [k for k in ("dataset", "store", "data") if d.get(k) is not None]
    if not kinds and d.get("path") is None:
        raise ctx.error(p, "give one of: dataset (a registered data set), path (your own Parquet/CSV/Arrow/Lance "
                           "data), store (an existing modyn-store store)" + (" or data (a DataFrame or Table)"
                                                                              if ctx.doc is None else ""))
    if len(kinds) > 1 or (d.get("path") is not None and kinds and kinds[0] in ("store", "data")):
        both = kinds + (["path"] if d.get("path") is not None else [])
        raise ctx.error(p + (both[1],), f"give only one of {both}: they are different kinds of source")
    kind = kinds[0] if kinds else "files"
    ds = None
    if kind == "dataset":
        ds = _typed(ctx, p + ("dataset",), d["dataset"], "str")
        known = sorted(DATASETS) + [SYNTHETIC]
        if ds not in known:
            raise ctx.error(p + ("dataset",), f"unknown data set {ds!r}; expected one of {known}, or give path: "
                                              "to read your own files")
        for k in USER_KEYS + ("store",):
            if d.get(k) is not None:
                raise ctx.error(p + (k,), f"not an option of a registered data set (it is for your own data: "
                                          "drop dataset: and give path:)")
    else:
        for k in DATASET_KEYS:
            if d.get(k):
                hint = (" (your own text: store an embedding or other numbers per row as a fixed-size list "
                        "column and name it in features; see docs/own-data.md)") if k == "encode" else ""
                raise ctx.error(p + (k,), "only registered data sets take this option" + hint)
    if kind == "store":
        for k in USER_KEYS:
            if k != "storage_options" and d.get(k) is not None:
                raise ctx.error(p + (k,), "a store source is already mapped (key, ts, label, features); drop this")
        for k in STORE_IGNORED:
            if d.get(k) is not None:
                raise ctx.error(p + (k,), "a store source replays (or follows) the store's own versions as they "
                                          "were committed, every row of them: drop this")
    chunk = _typed(ctx, p + ("chunk",), d.get("chunk"), "str", optional=True)
    if chunk is not None:
        import numpy as np

        try:
            chunk_index(np.zeros(1, dtype=np.int64), chunk)
        except ModynStoreError as exc:
            raise ctx.error(p + ("chunk",), str(exc)) from exc
        except (OverflowError, ValueError) as exc:  # a size beyond 64-bit integers ("99999999999999999999999d")
            raise ctx.error(p + ("chunk",), f"{chunk!r} is too large: a chunk size (in rows, seconds or ts units) "
                                            f"must fit a 64-bit integer ({type(exc).__name__}: {exc})") from exc
    cols = d.get("columns")
    if cols is not None:
        if not isinstance(cols, list) or not all(isinstance(c, str) and c for c in cols):
            raise ctx.error(p + ("columns",), f"expected a list of column names, got {cols!r}")
        cols = tuple(cols)
    params = _mapping(ctx, p + ("params",), {} if d.get("params") is None else d["params"], None)
    path = d.get("path")
    if path is not None and (not isinstance(path, str) or not path):
        raise ctx.error(p + ("path",), f"expected a path string, got {path!r}")
    if path is not None and kind == "files":
        path = _relative(ctx, path)
    store = d.get("store")
    if store is not None:
        store = _relative(ctx, _typed(ctx, p + ("store",), store, "str"))
    feats = d.get("features")
    if isinstance(feats, str):
        feats = [feats]
    if feats is not None:
        if not isinstance(feats, list) or not feats or not all(isinstance(c, str) and c for c in feats):
            raise ctx.error(p + ("features",), f"expected a list of column names, got {feats!r}")
        feats = tuple(feats)
    opts = d.get("storage_options")
    if opts is not None:
        opts = _mapping(ctx, p + ("storage_options",), opts, None)
    data = d.get("data")
    if data is not None and not _is_table(data):
        raise ctx.error(p + ("data",), f"expected a pandas DataFrame or pyarrow Table, got {type(data).__name__}")
    cfg = SourceConfig(
        dataset=ds,
        path=path,
        chunk=chunk,
        limit=_typed(ctx, p + ("limit",), d.get("limit"), "int", lo=1, optional=True),
        fraction=_fraction(ctx, p + ("fraction",), d.get("fraction")),
        columns=cols,
        params=params,
        encode=_typed(ctx, p + ("encode",), d.get("encode"), "str", choices=ENCODINGS, optional=True),
        seed=_typed(ctx, p + ("seed",), d.get("seed", 0), "int", lo=0),
        format=_typed(ctx, p + ("format",), d.get("format"), "str", choices=("parquet", "csv", "ipc", "lance"),
                      optional=True),
        ts=_typed(ctx, p + ("ts",), d.get("ts"), "str", optional=True),
        label=_typed(ctx, p + ("label",), d.get("label"), "str", optional=True),
        features=feats,
        key=_typed(ctx, p + ("key",), d.get("key"), "str", optional=True),
        store=store,
        storage_options=opts,
        data=data,
        drop_unlabeled=_typed(ctx, p + ("drop_unlabeled",), d.get("drop_unlabeled", False), "bool"),
        missing=_typed(ctx, p + ("missing",), d.get("missing", "zero"), "str", choices=MISSING),
    )
    if cfg.seed != 0 and cfg.fraction is None:  # it would change nothing: refused rather than ignored
        raise ctx.error(p + ("seed",), f"seed={cfg.seed} seeds the row sampling of source.fraction only, and no "
                                       "fraction is given: add fraction, or leave seed out (a generated data "
                                       "set takes its own seed in params.seed)")
    if kind in ("files", "data"):
        _check_mapping(ctx, cfg)
    elif kind == "store":
        _check_store(ctx, cfg)
    return cfg


def _is_table(x: Any) -> bool:
    return isinstance(x, (pa.Table, pa.RecordBatch)) or (type(x).__module__.startswith("pandas")
                                                          and type(x).__name__ == "DataFrame")


def _column_map(cfg: SourceConfig) -> Any:
    from modyn_store.app.datasets.columns import ColumnMap

    return ColumnMap(ts=cfg.ts, label=cfg.label, features=cfg.features, key=cfg.key,
                     drop_unlabeled=cfg.drop_unlabeled, missing=cfg.missing)


def _check_mapping(ctx: _Ctx, cfg: SourceConfig) -> None:
    """Open the data (schema only) and check every mapped column."""
    from modyn_store.app.datasets.columns import Encoder, SourceError
    from modyn_store.app.datasets.files import open_data
    from modyn_store.app.datasets.labels import LabelMap

    where = "data" if cfg.kind == "data" else "path"
    try:
        src = open_data(cfg.data if cfg.kind == "data" else cfg.path, format=cfg.format,
                        storage_options=dict(cfg.storage_options) if cfg.storage_options else None)
        cm = _column_map(cfg).resolved(src.schema.names)
        if cm.label is None:
            raise SourceError("label", f"no label column: name one (the data has {src.schema.names})")
        Encoder(src.schema, cm, labels=LabelMap("int", ()), assign_keys=True, require_label=True)
    except SourceError as exc:
        key = exc.key if exc.key not in ("path", "data") else where
        parts: tuple[Any, ...] = tuple(_split(key))
        if parts[0] in ("ts", "label", "key", "features", "format", "columns") and ctx.doc is not None \
                and ctx.doc.line(ctx.prefix + ("source",) + parts[:1]) is None:
            parts = ()  # a default mapping: point at the source section itself
        raise ctx.error(("source",) + parts, exc.message) from exc


def _split(key: str) -> list[Any]:
    name, *idx = key.split("[")
    return [name] + [int(i.rstrip("]")) for i in idx]


def open_source_store(cfg: SourceConfig) -> Any:
    """The store of a store source, opened with the source's ``storage_options``."""
    from modyn_store.core.store import Store

    return Store.open(str(cfg.store), storage_options=dict(cfg.storage_options) if cfg.storage_options else None)


def _check_store(ctx: _Ctx, cfg: SourceConfig) -> None:
    """Open the store of a store source: a bad option names ``storage_options``, a bad place ``store``."""
    from modyn_store.app.datasets.files import _access_errors
    from modyn_store.core.errors import InvalidArgumentError

    try:
        open_source_store(cfg)
    except InvalidArgumentError as exc:
        key = "storage_options" if exc.name.startswith("storage_options") else "store"
        raise ctx.error(("source", key), str(exc)) from exc
    except ModynStoreError as exc:
        raise ctx.error(("source", "store"), str(exc)) from exc
    except _access_errors() as exc:  # the first request: no endpoint, credentials or permission
        remote = "://" in str(cfg.store) and not str(cfg.store).startswith("memory://")
        hint = "; pass the storage options it needs (endpoint, region, credentials)" if remote else ""
        raise ctx.error(("source", "storage_options" if remote else "store"),
                        f"{cfg.store!r} cannot be read ({type(exc).__name__}: {exc}){hint}") from exc


def peek_schema(cfg: SourceConfig) -> pa.Schema | None:
    """The canonical ``ts`` type of a source, as a one-field schema (``None`` for registered data sets)."""
    from modyn_store.app.datasets.files import open_data

    if cfg.kind == "store":
        schema = open_source_store(cfg).schema
        return pa.schema([schema.field("ts")]) if schema is not None else None
    if cfg.kind not in ("files", "data"):
        return None
    src = open_data(cfg.data if cfg.kind == "data" else cfg.path, format=cfg.format,
                    storage_options=dict(cfg.storage_options) if cfg.storage_options else None)
    cm = _column_map(cfg).resolved(src.schema.names)
    if cm.ts is None:
        return pa.schema([pa.field("ts", pa.int64())])
    t = src.schema.field(cm.ts).type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        t = pa.timestamp("us")
    return pa.schema([pa.field("ts", t, metadata={"column": cm.ts})])


def check_trigger_units(ctx: _Ctx, cfg: SourceConfig, trigger: Mapping[str, Any],
                        path: tuple[Any, ...] = ("trigger",)) -> None:
    """A time trigger's ``every``/``start`` and a data drift trigger's ``window_time`` must fit the
    event-time column (numbers vs durations).

    Composite triggers are checked through their ``triggers`` list, each sub-trigger by its path,
    and a data drift trigger's ``warmup_trigger`` the same way.
    """
    if cfg.kind == "dataset" or not isinstance(trigger, Mapping):
        return
    subs = trigger.get("triggers")
    if isinstance(subs, list):
        for i, sub in enumerate(subs):
            check_trigger_units(ctx, cfg, sub, path + ("triggers", i))
    if isinstance(trigger.get("warmup_trigger"), Mapping):
        check_trigger_units(ctx, cfg, trigger["warmup_trigger"], path + ("warmup_trigger",))
    if trigger.get("name") not in ("time", "data_drift"):
        return
    schema = peek_schema(cfg)
    if schema is None:
        return
    field = schema.field("ts")
    col = (field.metadata or {}).get(b"column", b"").decode() or "(row order)"
    dated = pa.types.is_temporal(field.type)
    if trigger.get("name") == "data_drift":
        span = trigger.get("window_time")
        if span is not None and dated != isinstance(span, str):
            want = "a duration such as '1d' or '12h'" if dated else "a number in its unit"
            raise ctx.error(path + ("window_time",), f"the event-time column {col!r} holds "
                                                     f"{'dates' if dated else 'numbers'} ({field.type}), so "
                                                     f"window_time must be {want}, not {span!r}")
        return
    every, start = trigger.get("every"), trigger.get("start")
    if not dated and isinstance(every, str):
        raise ctx.error(path + ("every",), f"the event-time column {col!r} holds numbers ({field.type}), so every "
                                           f"must be a number in its unit, not {every!r}")
    if dated and not isinstance(every, str):
        raise ctx.error(path + ("every",), f"the event-time column {col!r} holds dates ({field.type}), so every "
                                           f"must be a duration such as '1d' or '12h', not {every!r}")
    if not dated and isinstance(start, str):
        raise ctx.error(path + ("start",), f"the event-time column {col!r} holds numbers; start must be a number")
