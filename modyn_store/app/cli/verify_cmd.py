"""``modyn-store verify STORE [--deep]``: check a store against its version log (fsck).

Reports what is damaged or missing and exits 1 if anything is; it never repairs (a damaged
store is restored from a backup or rebuilt from its sources, by a person who has seen the
report). ``--deep`` also reads every data file and recomputes every append's row count and
key checksum.

Example
-------
>>> from modyn_store.app.cli.main import main
>>> main(["verify", "--help"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from modyn_store.core.verify import verify

__all__ = ["register"]


def cmd_verify(args: argparse.Namespace) -> int:
    report = verify(args.store, deep=args.deep)
    if args.json:
        print(
            json.dumps(
                {
                    "store": report.uri,
                    "ok": report.ok,
                    "deep": report.deep,
                    "versions": report.versions,
                    "checked": list(report.checked),
                    "findings": [{"severity": f.severity, "what": f.what} for f in report.findings],
                }
            )
        )
    else:
        print(f"{report.uri}: {report.versions} versions; checked {', '.join(report.checked) or 'nothing'}")
        for f in report.findings:
            print(f"  {f}")
        print("OK: no damage found" if report.ok else f"DAMAGED: {len(report.errors)} problems (nothing was repaired)")
    return 0 if report.ok else 1


def register(sub: Any) -> None:
    """Add the ``verify`` sub-command."""
    p = sub.add_parser("verify", help="check a store's files against its version log (reports, never repairs)")
    p.add_argument("store", metavar="STORE", help="store folder or URL")
    p.add_argument("--deep", action="store_true", help="also read every data file and recompute every append's "
                                                       "row count and key checksum")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_verify)
