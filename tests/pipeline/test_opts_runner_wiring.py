"""Settings the pipeline loop hands on itself: an update policy's selection scopes choose the
train set of the trainings they govern, ``training.seed`` seeds every model the loop builds, and
``ray.address`` (or ``run --ray ADDRESS``) is the cluster it connects to (checked with a stand-in
for Ray's connect, so no Ray cluster is started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modyn_store import Store
from modyn_store.app.pipeline import parse_pipeline, run_pipeline
from modyn_store.core.trainings import Catalog
from pipeline_helpers import tiny

SOURCE = {"dataset": "elec2", "limit": 900, "chunk": "n:300"}


def _sizes(path: Path) -> list[int]:
    cat = Catalog(Store.open(str(path)))
    return [cat.get(r.training_id).n_keys for r in sorted(cat.list(), key=lambda r: r.training_id)]


@pytest.mark.parametrize("update", [{"name": "periodic_retrain", "every": 2, "retrain_scope": "all_data"},
                                    {"name": "finetune", "scope": "all_data"}],
                         ids=["retrain_scope", "scope"])
def test_update_scope_selects_the_train_set(tmp_path: Path, update: dict[str, Any]) -> None:
    cfg = parse_pipeline(tiny("scoped", source=SOURCE, trigger={"name": "data_amount", "every": 300},
                              update=update))
    run_pipeline(cfg, tmp_path / "s")
    sizes = _sizes(tmp_path / "s")
    assert len(sizes) == 3 and max(sizes) > 300  # new_data alone never trains on more than one firing's rows


def test_every_model_the_loop_builds_is_seeded_with_training_seed(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import training.models

    seeds: list[int] = []
    real = training.models.build_model

    def build_model(*args: Any, **kwargs: Any) -> Any:
        seeds.append(torch.initial_seed())
        return real(*args, **kwargs)

    cfg = parse_pipeline(tiny("seeded", source=SOURCE, trigger={"name": "data_amount", "every": 300},
                              limits={"max_trainings": 1}, training={"epochs": 1, "seed": 5}))
    monkeypatch.setattr(training.models, "build_model", build_model)
    run_pipeline(cfg, tmp_path / "s")
    assert seeds and set(seeds) == {5}


class _Stop(Exception):
    """Raised by the stand-in for Ray's connect: the test needs only its argument."""


def test_ray_address_is_the_cluster_connected_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modyn_store.app.pipeline import ray_exec

    seen: list[str] = []

    def connect(address: str) -> None:
        seen.append(address)
        raise _Stop

    monkeypatch.setattr(ray_exec, "connect", connect)
    cfg = parse_pipeline(tiny("rayed", source=SOURCE, ray={"address": "ray://head:10001", "workers": 1}))
    with pytest.raises(_Stop):
        run_pipeline(cfg, tmp_path / "s")
    assert seen == ["ray://head:10001"]


ONE = """name: flagged
source: {dataset: elec2, limit: 600, chunk: "n:300"}
model: {name: logreg}
trigger: {name: data_amount, every: 300}
ray: {workers: 3}
"""


def test_run_ray_flag_sets_the_address_and_keeps_the_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modyn_store.app.cli.main import main
    from modyn_store.app.pipeline import loop, ray_exec

    seen: list[tuple[str, int]] = []
    def init(self: Any, config: Any, *args: Any, **kwargs: Any) -> None:
        seen.append((config.ray.address, config.ray.workers))
        raise _Stop

    monkeypatch.setattr(loop.PipelineLoop, "__init__", init)
    monkeypatch.setattr(ray_exec, "connect", lambda address: None)
    (tmp_path / "p.yaml").write_text(ONE)
    with pytest.raises(_Stop):
        main(["run", str(tmp_path / "p.yaml"), "--store", str(tmp_path / "s"), "--ray", "ray://head:10001"])
    assert seen == [("ray://head:10001", 3)]


def test_run_ray_flag_with_a_bad_address_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modyn_store.app.cli.main import main

    (tmp_path / "p.yaml").write_text(ONE)
    assert main(["run", str(tmp_path / "p.yaml"), "--store", str(tmp_path / "s"), "--ray", "http://head:1"]) == 2
    assert "--ray" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_training_seed_seeds_the_selection(tmp_path: Path) -> None:
    # a seeded strategy draws the i-th train set with selection_seed(training.seed, i)
    import policies
    from modyn_store.app.pipeline.training_info import selection_seed

    def first_train_set(seed: int) -> Any:
        cfg = parse_pipeline(tiny(f"drawn-{seed}", source=SOURCE, trigger={"name": "data_amount", "every": 300},
                                  selection={"name": "uniform", "ratio": 0.5}, limits={"max_trainings": 1},
                                  training={"epochs": 1, "seed": seed}))
        res = run_pipeline(cfg, tmp_path / str(seed))
        store = Store.open(str(tmp_path / str(seed)))
        return store, Catalog(store).train_set(res.trainings[0].training_id)

    store, drawn = first_train_set(3)
    ctx = policies.SelectionContext(snapshot=store.as_of(drawn.version), seed=selection_seed(3, 0))
    want = policies.Uniform(ratio=0.5).select(ctx)
    assert sorted(drawn.keys.tolist()) == sorted(want.keys.tolist())
    _, other = first_train_set(0)
    assert sorted(other.keys.tolist()) != sorted(drawn.keys.tolist())
