"""The numbers the demo's store walk-through prints are those of the store it built.

Its time-travel table counts a version's rows as they read today (erased keys are gone from
every version), while the version log keeps the count of the commit: the walk-through says so,
with both numbers, so that "45309" next to the log's "45312" for the same version is explained.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modyn_store.app.cli.demo import store_walkthrough


def test_time_travel_counts_are_explained_and_match_the_store(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    store = store_walkthrough(tmp_path / "walk")
    out = capsys.readouterr().out
    m = re.search(r"the (\d+) erased keys are gone from every version, so version (\d+) has (\d+) where the log "
                  r"\(counted at commit\) says (\d+)", out)
    assert m is not None, out
    erased, version, now, then = (int(g) for g in m.groups())
    assert now == store.as_of(version).count()
    assert then == next(r.live for r in store.log() if r.version == version)
    assert then - now == erased == 3
    assert re.search(rf"^{version}\s+{version}\s+{now}\s", out, re.M)  # the table's row for that version
