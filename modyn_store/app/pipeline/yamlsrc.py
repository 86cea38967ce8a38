"""Read YAML with the line number of every key (``yaml.safe_load`` plus the composed node tree).

Example
-------
>>> from modyn_store.app.pipeline.yamlsrc import read_yaml
>>> doc = read_yaml("a: 1\\nb:\\n  c: [1, 2]\\n")
>>> doc.data, doc.line(("b", "c")), doc.line(("b", "c", 1))
({'a': 1, 'b': {'c': [1, 2]}}, 3, 3)
>>> doc.line(("nope",)) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from modyn_store.app.pipeline.errors import PipelineConfigError

__all__ = ["YamlDoc", "read_yaml"]

Path_ = tuple[Any, ...]


@dataclass(frozen=True)
class YamlDoc:
    """Plain YAML data and the 1-based line of each key path (``("grid", 2, "trigger")``)."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict, repr=False)
    source: str | None = None

    def line(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one (``None`` without any)."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return None

    def sub(self, prefix: Path_) -> YamlDoc:
        """The document below ``prefix`` (lines re-rooted)."""
        n = len(prefix)
        data = self.data
        for k in prefix:
            data = data[k]
        lines = {p[n:]: ln for p, ln in self.lines.items() if p[:n] == tuple(prefix) and len(p) > n}
        return YamlDoc(data, lines, self.source)


def _walk(node: yaml.Node, path: Path_, out: dict[Path_, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k.start_mark.line)
            out[path + (key,)] = k.start_mark.line + 1
            _walk(v, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[path + (i,)] = v.start_mark.line + 1
            _walk(v, path + (i,), out)


def read_yaml(text: str, source: str | None = None) -> YamlDoc:
    """Parse ``text`` safely (``yaml.safe_load``) and record the line of every key.

    Raises
    ------
    PipelineConfigError
        The text is not valid YAML (the error names the line).
    """
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise PipelineConfigError("<document>", f"not valid YAML: {problem}", line=line, source=source) from exc
    lines: dict[Path_, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return YamlDoc(data, lines, source)

