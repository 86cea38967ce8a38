"""`reproduce` of trainings whose rows were chosen during training: batch then sample, and a
train set reselected every epoch (its input scale fitted to the first epoch's rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as csv
import pytest

import training
from modyn_store import Store
from modyn_store.app.cli.main import main
from modyn_store.core.trainings import Catalog
from training.errors import ReproductionError

PIPELINE = """name: p
source: {{path: d.csv, ts: t, label: y, chunk: "n:100"}}
model: {{name: mlp, params: {{hidden: [8]}}}}
trigger: {{name: data_amount, every: 150}}
selection: {selection}
update: {{name: retrain}}
training: {{epochs: 3, batch_size: 32}}
evaluation: {{slices: 3}}
"""


def _data(folder: Path) -> None:
    r = np.random.default_rng(0)
    n = 450
    x, z = r.normal(size=n), r.normal(size=n) * 50 + 100  # features in their own units: scaled
    csv.write_csv(pa.table({"t": np.arange(n), "x": x, "z": z,
                            "y": np.where(x + (z - 100) / 50 > 0, "a", "b")}), str(folder / "d.csv"))


@pytest.mark.parametrize("selection", ["{name: loss, ratio: 0.5, mode: batch_then_sample}",
                                       # `reproduce` computes the irreducible losses with the recorded
                                       # irreducible-loss model (it refused: "pass downsample=")
                                       "{name: rho_loss, ratio: 0.5, mode: batch_then_sample}",
                                       "{name: loss, ratio: 0.5, period: 1}",
                                       "{name: loss, ratio: 0.5, period: 1, method: importance}"])
def test_reproduce_trainings_that_chose_rows_while_training(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, selection: str) -> None:
    monkeypatch.chdir(tmp_path)
    _data(tmp_path)
    (tmp_path / "p.yaml").write_text(PIPELINE.format(selection=selection))
    assert main(["run", "p.yaml", "--store", "st", "--out", "rep"]) == 0
    store = Store.open(str(tmp_path / "st"))
    rec = Catalog(store).get("p-0001")
    if "batch_then_sample" in selection:
        assert rec.metrics["batch_then_sample"]["trained"] < rec.metrics["batch_then_sample"]["scored"]
        # without the strategy that chose each batch's rows the API says so (it gave "DIFFER")
        with pytest.raises(ReproductionError, match="downsample="):
            training.reproduce(store, "p-0001")
    else:
        assert rec.metrics["reselections"] >= 1
        # the first epoch's rows are fewer than all epochs' rows: the scale comes from them
        ts = Catalog(store).train_set("p-0001")
        assert ts.per_epoch is not None and ts.per_epoch[0].size < ts.size
        if "importance" in selection:
            # each reselection weighs its keys anew: every epoch's own weights are recorded
            assert ts.per_epoch_weights is not None
            again = np.intersect1d(ts.keys[ts.per_epoch[0]], ts.keys[ts.per_epoch[1]])
            first, second = ts.epoch_set(0), ts.epoch_set(1)
            w0 = dict(zip(first.keys.tolist(), first.weights.tolist()))
            w1 = dict(zip(second.keys.tolist(), second.weights.tolist()))
            assert any(w0[k] != w1[k] for k in again.tolist())
    for tid in ("p-0001", "p-0002"):
        assert main(["reproduce", "st", tid]) == 0  # identical weights, input scale included
