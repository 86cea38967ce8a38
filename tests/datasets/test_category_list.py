"""A category list given to the Wild-Time text loaders must name each category once: a repeated
name took its last position, so its rows got another class code and one code stayed unused."""

from __future__ import annotations

from pathlib import Path

import pytest

from modyn_store.app.datasets.wildtime import category_codes, load_huffpost
from modyn_store.core.errors import InvalidArgumentError


def test_repeated_category_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="categories"):
        category_codes(["A", "B"], ["A", "B", "A"])


def test_one_string_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="categories"):
        category_codes(["A", "B"], "AB")


def test_huffpost_with_a_repeated_category_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "hp.json"
    f.write_text('{"category": "A", "date": "2020-01-01", "headline": "x"}\n'
                 '{"category": "B", "date": "2020-01-02", "headline": "y"}\n', encoding="utf-8")
    with pytest.raises(InvalidArgumentError, match="categories"):
        load_huffpost(f, categories=["A", "B", "A"])
    assert load_huffpost(f, categories=["B", "A"]).column("label").to_pylist() == [1, 0]
