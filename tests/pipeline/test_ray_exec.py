"""Ray execution on a local Ray cluster (``ray.init(num_cpus=2)``, one session for the module):
snapshots as Ray Datasets, the scoring pass and selection equal to the single-process ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from modyn_store import DataUnavailableError, Store
from modyn_store.app.pipeline.ray_exec import score_on_ray, select_on_ray, supports
from modyn_store.core.trainset import TrainSet
from policies import EL2N, Loss, Uniform
from policies.base import SelectionContext
from training.scoring import score

ray = pytest.importorskip("ray")

from tests.pipeline.ray_marks import RAY_MARKS, ray_session  # noqa: E402,F401 (the module's Ray session)

pytestmark = RAY_MARKS


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Several fragments, deletes and an erasure, so every filter of a snapshot matters."""
    rng = np.random.default_rng(3)
    st = Store.open(str(tmp_path_factory.mktemp("ray") / "store"), create=True)
    for i in range(4):
        n = 300
        x = rng.standard_normal((n, 6)).astype(np.float32)
        y = (x[:, 0] - x[:, 2] > 0).astype(np.int64)
        st.append(pa.table({"ts": np.arange(i * n, (i + 1) * n), "label": y,
                            "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 6),
                            "text": [f"row-{i}-{j}" for j in range(n)]}))
        if i == 1:
            st.delete(keys=np.arange(0, 600, 7))
    st.erase(np.arange(5, 1200, 50), reason="test")
    return st


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def test_to_ray_is_the_snapshot(store: Store) -> None:
    for version in (1, 3, store.version):
        snap = store.as_of(version)
        got = snap.to_ray(["ts", "text"]).to_arrow_refs()
        table = pa.concat_tables(ray.get(got)).sort_by("key")
        want = snap.to_table(["key", "ts", "text"]).sort_by("key")
        assert table.column("key").to_pylist() == want.column("key").to_pylist()
        assert table.column("text").to_pylist() == want.column("text").to_pylist()
    # the version bound and the user filter are pushed down, deletions and erasures dropped
    snap = store.as_of(3)
    keys = np.sort(snap.to_ray(["ts"], "ts >= 500").to_pandas()["key"].to_numpy())
    assert np.array_equal(keys, snap.to_table(["key"], "ts >= 500").column("key").to_numpy())
    assert not np.isin(np.arange(5, 1200, 50), keys).any() and not np.isin(np.arange(0, 600, 7), keys).any()


def test_to_ray_refuses_purged_rows(tmp_path: Path) -> None:
    st = Store.open(str(tmp_path / "s"), create=True)
    st.append({"ts": np.arange(10)})
    st.delete(keys=[1, 2])
    st.append({"ts": [10]})
    st.vacuum(keep_versions=1, dry_run=False)
    with pytest.raises(DataUnavailableError):
        st.as_of(1).to_ray(["ts"])
    skipped = st.as_of(1).to_ray(["ts"], on_unavailable="skip").to_pandas()["key"].tolist()
    assert sorted(skipped) == [0, *range(3, 10)]


def test_to_ray_reads_and_names_only_the_columns_asked(store: Store) -> None:
    """``columns``: the Dataset's schema and every block hold ``key`` and those columns, in that
    order; without them, every user column (never the internal ``_version``)."""
    snap = store.as_of(3)
    ds = snap.to_ray(["text", "ts"])
    assert ds.schema().names == ["key", "text", "ts"]
    assert {tuple(ray.get(ref).schema.names) for ref in ds.to_arrow_refs()} == {("key", "text", "ts")}
    assert snap.to_ray().schema().names == ["key", *snap.to_table().drop_columns(["key"]).column_names]


def test_to_ray_describes_the_rows_it_reads(tmp_path: Path) -> None:
    """A snapshot without deletions: ``Dataset.schema()`` names the columns read (not every
    column of the table, nor the internal ``_version``) and ``Dataset.count()`` counts the rows
    that the version and the filter keep, not the rows of the fragments read."""
    st = Store.open(str(tmp_path / "s"), create=True)
    for i in range(3):
        st.append({"ts": np.arange(i * 100, (i + 1) * 100), "text": [f"r{j}" for j in range(100)]})
    assert st.as_of().to_ray(["ts"]).schema().names == ["key", "ts"]
    assert st.as_of().to_ray().schema().names == ["key", "ts", "text"]
    assert st.as_of(1).to_ray(["ts"]).count() == 100
    assert st.as_of().to_ray(["ts"], "ts >= 150").count() == 150


def _read_op(ds: object) -> object:
    """The Read operator of a Dataset's logical plan (what Ray Data will run)."""
    op = ds._logical_plan.dag  # type: ignore[attr-defined]
    while op.input_dependencies:
        op = op.input_dependencies[0]
    return op


def _read_concurrency(ds: object) -> object:
    """The read tasks Ray Data runs at once for ``ds`` (``None``: as many as it likes), as the
    Read operator holds it: its compute strategy's size (Ray >= 2.60) or ``_concurrency``."""
    op = _read_op(ds)
    compute = getattr(op, "compute", None)
    return getattr(compute, "size", None) if compute is not None else getattr(op, "_concurrency")


def test_to_ray_passes_its_read_options_to_ray(store: Store) -> None:
    """``override_num_blocks`` is the number of blocks read, ``concurrency`` the number of read
    tasks Ray Data runs at once, and ``ray_remote_args`` the read tasks' options (a node that is
    not there makes them unschedulable)."""
    from ray.exceptions import TaskUnschedulableError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    snap = store.as_of()
    want = snap.to_table(["key"]).column("key").to_numpy()
    for blocks in (1, 2):
        read = snap.to_ray(["ts"], override_num_blocks=blocks).materialize()
        assert read.num_blocks() == blocks
        assert np.array_equal(np.sort(read.to_pandas()["key"].to_numpy()), np.sort(want))
    assert _read_concurrency(snap.to_ray(["ts"], concurrency=1)) == 1
    assert _read_concurrency(snap.to_ray(["ts"])) != 1
    # an option Ray Data's read names a parameter for is passed as one (no deprecation warning)
    read_op = _read_op(snap.to_ray(["ts"], ray_remote_args={"num_cpus": 0.5}))
    task_args = getattr(read_op, "ray_remote_args", None) or getattr(read_op, "_ray_remote_args")  # (Ray < 2.60)
    assert task_args["num_cpus"] == 0.5
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    got = snap.to_ray(["ts"], ray_remote_args={"scheduling_strategy": here}).to_pandas()["key"].to_numpy()
    assert np.array_equal(np.sort(got), np.sort(want))
    nowhere = NodeAffinitySchedulingStrategy("ab" * 28, soft=False)
    with pytest.raises(TaskUnschedulableError):
        snap.to_ray(["ts"], ray_remote_args={"scheduling_strategy": nowhere}).materialize()


def test_scoring_on_ray_equals_single_process(store: Store) -> None:
    model = _model()
    names = ("loss", "entropy", "margin", "el2n", "gradnorm")
    before = store.version
    single = score(store, model, inputs={"input": "x"}, scores=names, write=False)
    dist = score_on_ray(store, model, inputs={"input": "x"}, scores=names, workers=2)
    assert store.version == before + 1, "one store version for the whole pass"
    assert np.array_equal(dist.keys, single.keys)
    for n in names:
        assert np.array_equal(dist.values[n], single.values[n]), n
    stored = store.scores.as_of(None, "loss").sort_by("key")
    assert np.array_equal(stored.column("value").to_numpy(), single.values["loss"])


@pytest.mark.parametrize("strategy", [Uniform(ratio=0.2), Loss(ratio=0.1), EL2N(ratio=0.3, method="importance")],
                         ids=["uniform", "loss-top", "el2n-importance"])
def test_selection_on_ray_equals_single_process(store: Store, strategy: object) -> None:
    assert supports(strategy)
    snap = store.as_of()
    result = score(store, _model(), inputs={"input": "x"}, scores=("loss", "el2n"), write=False)
    computed = {n: (result.keys, result.values[n]) for n in ("loss", "el2n")}
    for seed in (0, 7):
        single = strategy.select(SelectionContext(snapshot=snap, seed=seed, computed_scores=computed))
        on_ray = select_on_ray(strategy, snap, seed=seed, scores=computed)
        assert np.array_equal(on_ray.keys, single.keys)
        assert on_ray.version == single.version
        assert np.array_equal(on_ray.weights, single.weights)
    if not isinstance(strategy, Loss):  # the seed matters to the sampling strategies
        assert not np.array_equal(select_on_ray(strategy, snap, seed=1, scores=computed).keys,
                                  select_on_ray(strategy, snap, seed=2, scores=computed).keys)


def test_rho_loss_on_ray_selects_what_it_selects_without(store: Store) -> None:
    # its score is loss minus irreducible loss over the non-holdout rows: run in the driver
    from policies import RhoLoss

    strategy = RhoLoss(ratio=0.2)
    assert not supports(strategy)
    snap = store.as_of()
    keys = snap.keys()
    rng = np.random.default_rng(0)
    computed = {"loss": (keys, rng.uniform(0, 2, keys.size)),
                "irreducible_loss": (keys, rng.uniform(0, 1, keys.size))}
    single = strategy.select(SelectionContext(snapshot=snap, seed=0, computed_scores=computed))
    assert select_on_ray(strategy, snap, seed=0, scores=computed) == single


def test_nan_score_on_ray_is_refused_as_in_one_process(store: Store) -> None:
    from modyn_store.core.errors import InvalidArgumentError

    snap = store.as_of()
    keys = snap.keys()
    values = np.linspace(0.1, 2.0, keys.size)
    values[3] = np.nan
    computed = {"loss": (keys, values)}
    with pytest.raises(InvalidArgumentError) as single:
        Loss(ratio=0.5).select(SelectionContext(snapshot=snap, computed_scores=computed))
    with pytest.raises(InvalidArgumentError) as on_ray:  # not a train set without that row
        select_on_ray(Loss(ratio=0.5), snap, seed=0, scores=computed)
    assert on_ray.value.name == single.value.name == f"scores['loss'][key {int(keys[3])}]"
    with pytest.raises(InvalidArgumentError) as single:
        Loss(ratio=0.5, method="importance").select(SelectionContext(snapshot=snap, computed_scores=computed))
    with pytest.raises(InvalidArgumentError) as on_ray:
        select_on_ray(Loss(ratio=0.5, method="importance"), snap, seed=0, scores=computed)
    assert on_ray.value.name == single.value.name == f"scores['loss'][key {int(keys[3])}]"
    big = {"loss": (keys, np.full(keys.size, 2**53 + 1, dtype=np.int64))}
    with pytest.raises(InvalidArgumentError, match="2\\*\\*53"):
        select_on_ray(Loss(ratio=0.5), snap, seed=0, scores=big)


def test_pipeline_with_ray_selects_what_it_selects_without(tmp_path: Path) -> None:
    from modyn_store.app.pipeline import parse_pipeline
    from modyn_store.app.pipeline.runner import Runner
    from modyn_store.core.trainings import Catalog
    from tests.pipeline.pipeline_helpers import tiny

    over = {"selection": {"name": "loss", "ratio": 0.3}, "limits": {"max_trainings": 3}}
    sets = []
    for name, extra in (("plain", {}), ("onray", {"ray": {"address": "local", "workers": 2}})):
        cfg = parse_pipeline(tiny(name, **over, **extra))
        assert (cfg.ray is not None) == bool(extra)
        runner = Runner(cfg, tmp_path / name)
        list(runner.run())
        cat = Catalog(runner.store)
        sets.append([cat.train_set(t.training_id) for t in runner.result.trainings])
        for t in runner.result.trainings:  # the option took effect: scoring and selection ran on Ray
            params = cat.get(t.training_id).policy_params
            assert (params.get("ray") == {"address": "local", "workers": 2}) == bool(extra)
            assert (params.get("scored_on_ray") == ["loss"]) == bool(extra)
    assert len(sets[0]) == len(sets[1]) >= 2
    for a, b in zip(*sets):
        assert np.array_equal(a.keys, b.keys) and np.array_equal(a.weights, b.weights)


def test_ray_address_is_validated() -> None:
    from modyn_store.app.pipeline import parse_pipeline
    from modyn_store.app.pipeline.errors import PipelineConfigError
    from tests.pipeline.pipeline_helpers import tiny

    with pytest.raises(PipelineConfigError, match="workers"):
        parse_pipeline(tiny("bad", ray={"address": "local", "workers": 0}))
    with pytest.raises(PipelineConfigError, match="adress"):
        parse_pipeline(tiny("bad", ray={"adress": "local"}))


def test_ray_train_ddp_matches_one_process(tmp_path: Path) -> None:
    from modyn_store.core.trainings import Catalog
    from training.distributed import train_on_ray
    from training.trainer import TrainConfig, train

    rng = np.random.default_rng(0)
    st = Store.open(str(tmp_path / "s"), create=True)
    x = rng.standard_normal((66, 3)).astype(np.float32)
    st.append(pa.table({"ts": np.arange(66), "label": (x[:, 0] > 0).astype(np.int64),
                        "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 3)}))
    cfg = TrainConfig(model="logreg", model_params={"in_features": 3, "n_classes": 2}, batch_size=8, epochs=2,
                      momentum=0.9, lr=0.1)
    ts = TrainSet(np.arange(66), np.linspace(0.5, 1.5, 66), version=1)
    rec = train_on_ray(st, ts, cfg, num_workers=2, training_id="on-ray")
    assert rec.metrics["world_size"] == 2 and rec.cost.samples == 2 * 66
    single = train(st, ts, cfg, record=False).model.state_dict()
    ddp = Catalog(st).load_checkpoint("on-ray")
    for k, v in single.items():
        torch.testing.assert_close(ddp[k], v, rtol=1e-5, atol=1e-6)


def test_ray_train_raises_the_store_error_of_its_workers(tmp_path: Path) -> None:
    """A train set with an erased key: Ray Train's workers refuse it, and ``train_on_ray`` raises
    the ``ErasedKeysError`` that ``train`` raises, not Ray Train's ``TrainingFailedError``."""
    from training.distributed import train_on_ray
    from training.errors import ErasedKeysError
    from training.trainer import TrainConfig, train

    st = Store.open(str(tmp_path / "s"), create=True)
    x = np.random.default_rng(0).standard_normal((20, 3)).astype(np.float32)
    st.append(pa.table({"ts": np.arange(20), "label": (x[:, 0] > 0).astype(np.int64),
                        "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 3)}))
    ts = TrainSet(np.arange(20), np.ones(20), version=1)
    st.erase([4], reason="test")
    cfg = TrainConfig(model="logreg", model_params={"in_features": 3, "n_classes": 2}, batch_size=4, epochs=1)
    with pytest.raises(ErasedKeysError) as single:
        train(st, ts, cfg, record=False)
    with pytest.raises(ErasedKeysError) as on_ray:
        train_on_ray(st, ts, cfg, num_workers=1, storage_path=str(tmp_path / "ray-train"))
    assert on_ray.value.keys.tolist() == single.value.keys.tolist() == [4]
    assert str(on_ray.value) == str(single.value)
