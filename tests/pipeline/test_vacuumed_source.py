"""A store source whose deleted rows were vacuumed before a pipeline read them: the pipeline
stops with an error that says why and where the limitation is documented, not with advice that
only the Python API can follow."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import DataUnavailableError, Store
from modyn_store.app.pipeline.config import parse_pipeline
from modyn_store.app.pipeline.online import OnlineRunner


def test_a_followed_store_whose_deleted_rows_were_vacuumed_stops_the_pipeline_saying_why() -> None:
    store = Store.open("memory://vacuumed-source", create=True)
    x = np.random.default_rng(0).standard_normal((60, 2)).astype(np.float32)
    store.append(pa.table({"ts": np.arange(60), "label": (x[:, 0] > 0).astype(np.int64),
                           "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
    store.delete(keys=[3, 4])
    store.vacuum(keep_versions=1, dry_run=False)
    cfg = parse_pipeline({"name": "live", "source": {"dataset": "elec2"}, "model": {"name": "logreg",
                          "params": {"n_classes": 2}}, "trigger": {"name": "data_amount", "every": 20}})
    runner = OnlineRunner(cfg, store, poll=0.01)
    with pytest.raises(DataUnavailableError, match=r"2 rows inserted in versions \(0, 1\] were purged by vacuum "
                                                   r"\(e\.g\. keys \[3, 4\]\): a pipeline reads every version") as err:
        runner.run(idle_timeout=0.05)
    assert "on_unavailable" not in str(err.value)  # an argument a pipeline user cannot pass
    assert err.value.keys.tolist() == [3, 4]
