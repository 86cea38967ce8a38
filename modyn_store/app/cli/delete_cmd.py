"""``modyn-store delete STORE [KEY ...] [--keys-file FILE | --where SQL]``: soft-delete rows.

The rows leave the live set from the new version on; earlier versions still hold them (time
travel), until ``vacuum`` purges them or ``erase`` removes their bytes. ``--dry-run`` counts the
live rows a delete would remove, by label value (a filter sees class codes: check it this way
first), and writes nothing.

Example
-------
>>> from modyn_store.app.cli.main import main
>>> main(["delete", "--help"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import numpy as np
import pyarrow.compute as pc

from engine._search import sorted_unique
from modyn_store.core.errors import InvalidArgumentError, InvalidFilterError

__all__ = ["register"]


def _targets(args: argparse.Namespace) -> np.ndarray | None:
    """The keys named by ``KEY`` and ``--keys-file`` (None with ``--where``)."""
    from modyn_store.app.cli.main import named_keys

    keys = named_keys(args)
    if args.where is not None:
        if keys:
            raise InvalidArgumentError("--where", args.where, "either keys (KEY, --keys-file) or --where, not both")
        return None
    if not keys:
        raise InvalidArgumentError("KEY", "(none)", "at least one key, --keys-file or --where")
    return np.array(keys, dtype=np.int64)


def _cli_filter_error(exc: InvalidFilterError, store: Any, where: str | None) -> InvalidFilterError:
    from modyn_store.app.cli.main import clean_filter_error
    from modyn_store.app.datasets.labels import read_label_map

    hint = ""
    if "label" in (where or "") and read_label_map(store) is not None:  # as `show --filter` tells it
        hint = "; labels are stored as class codes (`modyn-store labels STORE` lists them): filter on the code"
    return InvalidFilterError(f"--where: {clean_filter_error(exc)}{hint}")


def _would_delete(store: Any, keys: np.ndarray | None, where: str | None) -> tuple[int, Counter[Any], np.ndarray]:
    """(the live rows a delete would remove, their count by label code where the store has
    labels, the named keys that are not live); streamed, whatever the rows."""
    snap = store.as_of()
    cols = ["key", "label"] if store.schema is not None and "label" in store.schema.names else ["key"]
    if keys is None:
        batches: Any = snap.to_batches(cols, where)
        dead = np.empty(0, np.int64)
    else:
        want = sorted_unique(keys)
        live = snap.contains(want)
        batches, dead = snap.take(want[live], cols).to_batches(), want[~live]
    n, by_code = 0, Counter[Any]()
    for b in batches:
        n += b.num_rows
        if "label" in cols:
            by_code.update({c["values"]: c["counts"] for c in pc.value_counts(b.column(1)).to_pylist()})
    return n, by_code, dead


def _by_label(store: Any, by_code: Counter[Any]) -> str:
    """``"; by label: 'sun' (4), 'rain' (2)"``: rows by label value (class codes decoded through
    the store's label map), most first; empty without labels."""
    if not by_code:
        return ""
    from modyn_store.app.datasets.labels import read_label_map

    labels = read_label_map(store)
    top = by_code.most_common()
    shown = [f"{labels.values[c] if labels is not None and c is not None else c!r} ({k})" for c, k in top[:10]]
    return "; by label: " + ", ".join(shown) + (f", ... ({len(top) - 10} more)" if len(top) > 10 else "")


def cmd_delete(args: argparse.Namespace) -> int:
    from modyn_store.core.store import Store

    keys = _targets(args)
    store = Store.open(args.store)
    try:
        if args.dry_run:
            n, by_code, dead = _would_delete(store, keys, args.where)
            print(f"would delete {n} live rows of version {store.version}{_by_label(store, by_code)}; nothing written")
            if dead.size:
                verdict = "skipped" if args.missing == "ignore" else "refused: the delete would write nothing"
                print(f"{dead.size} keys are not live (never stored, deleted or erased), e.g. "
                      f"{dead[:5].tolist()}: {verdict}" + ("" if args.missing == "ignore" else
                                                          " (--missing ignore skips them)"))
            return 0
        rec = store.delete(keys, where=args.where, missing=args.missing, message=args.message or "")
    except InvalidFilterError as exc:
        raise _cli_filter_error(exc, store, args.where) from None
    ignored = rec.details.get("ignored", 0)
    print(f"deleted {rec.deleted} rows in version {rec.version}" + (f" ({ignored} keys not live, skipped)"
                                                                    if ignored else "")
          + f"; {rec.live} live rows. Earlier versions still hold them: `modyn-store vacuum` purges them, "
            "`modyn-store erase` removes their bytes")
    return 0


def register(sub: Any) -> None:
    """Add ``delete`` to the ``modyn-store`` sub-commands."""
    p = sub.add_parser("delete", help="soft-delete rows: they leave the live set from a new version on")
    p.add_argument("store", metavar="STORE", help="store folder or URL (memory://, s3://...)")
    p.add_argument("keys", nargs="*", metavar="KEY", help="integer keys to delete")
    p.add_argument("--keys-file", metavar="FILE", help="a file with one key per line")
    p.add_argument("--where", metavar="SQL", help="delete the live rows this filter matches instead, "
                                                  "e.g. \"ts < 1000\" (the store's columns; labels are class codes)")
    p.add_argument("--missing", choices=["error", "ignore"], default="error",
                   help="what to do with keys not live: never stored, deleted or erased (default: error, "
                        "nothing is deleted)")
    p.add_argument("--message", help="text for the version log")
    p.add_argument("--dry-run", action="store_true", help="count the live rows it would delete, by label value; "
                                                          "write nothing")
    p.set_defaults(func=cmd_delete)
