"""Policy configs inside policy configs, and what a pipeline fills in for them.

A composite trigger holds its sub-triggers' configs, a drift trigger its warm-up trigger's, a
composed selection its two parts'. :data:`PARTS` names those parameters, so that the parser
builds (and reports the errors of) each part under its own key, and
:func:`with_model_columns` reaches every trigger a pipeline's ``trigger:`` holds.

Example
-------
>>> PARTS[("trigger", "any")]
(('triggers', 'trigger'),)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["PARTS", "with_model_columns"]

#: Parameters of built-in policies that hold policy configs (``(kind, name)`` -> ``(param, kind)``):
#: those parts are built first, so that an error names the part's own key and line.
PARTS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("trigger", "any"): (("triggers", "trigger"),), ("trigger", "all"): (("triggers", "trigger"),),
    ("trigger", "at_least"): (("triggers", "trigger"),), ("trigger", "data_drift"): (("warmup_trigger", "trigger"),),
    ("selection", "compose"): (("pre", "selection"), ("post", "selection")),
}


#: Built-in triggers that read feature columns (their ``columns``) and watch, where a pipeline
#: leaves ``columns`` out, the columns its model reads.
_READ_FEATURES = frozenset({"data_drift", "performance"})


def with_model_columns(cfg: Any, columns: list[str]) -> Any:
    """``cfg`` (a trigger's config) with ``columns`` filled in where a built-in trigger that
    reads feature columns leaves them out, in composites and warm-up triggers too; what is
    given (also an empty list, which the trigger refuses) is kept.

    Example
    -------
    >>> with_model_columns({"name": "any", "triggers": [{"name": "performance"}, {"name": "time"}]}, ["features"])
    {'name': 'any', 'triggers': [{'name': 'performance', 'columns': ['features']}, {'name': 'time'}]}
    """
    if not isinstance(cfg, Mapping) or not isinstance(cfg.get("name"), str):
        return cfg
    out = dict(cfg)
    if out["name"] in _READ_FEATURES and "columns" not in out:
        out["columns"] = list(columns)
    for param, _ in PARTS.get(("trigger", out["name"]), ()):
        parts = out.get(param)
        if isinstance(parts, list):
            out[param] = [with_model_columns(part, columns) for part in parts]
        elif parts is not None:
            out[param] = with_model_columns(parts, columns)
    return out
