"""Replay mode end to end: sample-precise cutoffs, recorded trainings, evaluation, CLI round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from pipeline_helpers import tiny

from modyn_store import Store
from modyn_store.core.trainings import Catalog
from modyn_store.app.cli.main import main
from modyn_store.app.pipeline import parse_pipeline, run_pipeline
from modyn_store.app.pipeline.history import pipeline_results


def _keys_up_to(store: Store, version: int, position: int) -> np.ndarray:
    """Keys inserted before ``version`` plus the first ``position`` rows of its delta, (ts, key) order."""
    before = store.as_of(version - 1).keys() if version > 1 else np.empty(0, np.int64)
    delta = store.delta(version - 1, version)
    return np.union1d(before, delta.inserted.column("key").to_numpy()[:position])


def test_amount_trigger_cuts_inside_versions_and_trains_on_exactly_that(tmp_path: Path) -> None:
    cfg = parse_pipeline(tiny("amount", trigger={"name": "data_amount", "every": 700},
                              selection={"name": "all_data"}, update={"name": "retrain"}))
    res = run_pipeline(cfg, tmp_path / "s")
    store = Store.open(str(tmp_path / "s"))
    cat = Catalog(store)
    assert len(res.trainings) == 3000 // 700
    seen_total = 0
    for i, t in enumerate(res.trainings):
        rec = cat.get(t.training_id)
        assert rec.cutoff == t.cutoff
        version, position = rec.cutoff
        assert rec.trigger["seen"] == (i + 1) * 700
        expected = _keys_up_to(store, version, position)
        assert expected.size == (i + 1) * 700
        np.testing.assert_array_equal(np.sort(cat.train_set(t.training_id).keys), expected)
        assert rec.parent_id is None and json.loads(rec.update_decision)["mode"] == "retrain"
        seen_total = max(seen_total, expected.size)
    assert any(t.cutoff[1] not in (0, len(store.delta(t.cutoff[0] - 1, t.cutoff[0]))) for t in res.trainings)


def test_new_data_finetune_chain_and_evaluation(tmp_path: Path) -> None:
    cfg = parse_pipeline(tiny("chain"))
    res = run_pipeline(cfg, tmp_path / "s")
    store = Store.open(str(tmp_path / "s"))
    cat = Catalog(store)
    n = len(res.trainings)
    assert n >= 3
    sets = [cat.train_set(t.training_id).keys for t in res.trainings]
    for a in range(n):
        for b in range(a + 1, n):
            assert np.intersect1d(sets[a], sets[b]).size == 0  # new data only: disjoint
    last = res.trainings[-1]
    np.testing.assert_array_equal(np.sort(np.concatenate(sets)), _keys_up_to(store, *last.cutoff))
    parents = [cat.get(t.training_id).parent_id for t in res.trainings]
    assert parents == [None] + [t.training_id for t in res.trainings[:-1]]
    assert [t.mode for t in res.trainings] == ["retrain"] + ["finetune"] * (n - 1)
    m = np.array(res.result.matrix)
    assert m.shape == (n, 4)
    assert np.all((m >= 0) & (m <= 1))
    stored = pipeline_results(store)
    assert [r.name for r in stored] == ["chain"]
    np.testing.assert_allclose(np.array(stored[0].matrix), m)
    assert [r.slice_index for r in stored[0].triggers] == [r.slice_index for r in res.result.triggers]
    cutoff_ts = [t.cutoff_ts for t in res.trainings]
    assert cutoff_ts == sorted(cutoff_ts)


def test_cli_run_report_reproduce(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(tiny("clip", trigger={"name": "time", "every": "21d"})))
    store = tmp_path / "store"
    assert main(["run", str(f), "--store", str(store), "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "clip" in out and "mean accuracy" in out
    assert (tmp_path / "rep" / "report.md").exists()
    assert main(["report", str(store), "--out", str(tmp_path / "rep2")]) == 0
    out = capsys.readouterr().out
    assert "clip-0000" in out and (tmp_path / "rep2" / "metric_over_time.png").exists()
    assert main(["reproduce", str(store), "clip-0001"]) == 0
    assert "identical" in capsys.readouterr().out
    # a mistyped id names the trainings there are
    assert main(["reproduce", str(store), "clip-1"]) == 2
    err = capsys.readouterr().err
    assert "no training 'clip-1' in the catalog; TRAINING_ID is one of its" in err and "clip-0000, clip-0001" in err


def test_model_aware_trigger_and_embedding_selection(tmp_path: Path) -> None:
    perf = {"name": "any", "triggers": [{"name": "time", "every": "28d"},
                                        {"name": "performance", "columns": ["features"], "every": 300,
                                         "threshold": 0.7}]}
    res = run_pipeline(parse_pipeline(tiny("perf", trigger=perf)), tmp_path / "a")
    reasons = [Catalog(Store.open(str(tmp_path / "a"))).get(t.training_id).trigger["reason"] for t in res.trainings]
    assert len(res.trainings) > 3000 // (28 * 48)  # the performance trigger adds firings to the time trigger's
    assert len(set(reasons)) > 1
    res = run_pipeline(parse_pipeline(tiny("kc", selection={"name": "kcenter_greedy", "limit": 150})), tmp_path / "b")
    assert res.trainings and all(t.n_keys == 150 for t in res.trainings)


@pytest.mark.parametrize(("trigger", "labels"), [
    ({"name": "time", "every": "14d"}, False),
    ({"name": "any", "triggers": [{"name": "time", "every": "28d"},
                                  {"name": "performance", "columns": ["features"], "every": 300, "threshold": 0.7}]},
     True),
])
def test_deltas_carry_labels_only_for_triggers_that_read_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               trigger: dict, labels: bool) -> None:
    seen: list[list[str]] = []
    real = Store.delta

    def recording(self: Store, *args: object, **kwargs: object) -> object:
        d = real(self, *args, **kwargs)  # type: ignore[arg-type]
        seen.append(d.inserted.column_names)
        return d

    monkeypatch.setattr(Store, "delta", recording)
    res = run_pipeline(parse_pipeline(tiny("lab", trigger=trigger, limits={"max_trainings": 2})), tmp_path / "s")
    assert res.trainings and seen
    assert all(("label" in names) == labels for names in seen if names)
