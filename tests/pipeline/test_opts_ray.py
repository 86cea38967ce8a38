"""``ray: {address, workers}`` and ``run --ray ADDRESS`` put a pipeline's scoring on Ray with that
many scoring tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modyn_store import Store
from modyn_store.app.cli.main import main
from modyn_store.core.trainings import Catalog
from tests.pipeline.ray_marks import RAY_MARKS

pytestmark = RAY_MARKS

PIPELINE = """name: {name}
source: {{dataset: elec2, limit: 1500, chunk: "14d"}}
model: {{name: logreg}}
trigger: {{name: time, every: "14d"}}
selection: {{name: loss, ratio: 0.3}}
update: {{name: finetune}}
limits: {{max_trainings: 2}}
evaluation: {{slices: 2}}
{extra}"""


@pytest.fixture
def workers_seen(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    from modyn_store.app.pipeline import ray_exec

    seen: list[Any] = []
    real = ray_exec.score_on_ray

    def score_on_ray(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("workers"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ray_exec, "score_on_ray", score_on_ray)
    return seen


def _lineage(store: Path) -> list[dict[str, Any]]:
    cat = Catalog(Store.open(str(store)))
    return [cat.get(r.training_id).policy_params for r in cat.list()]


def test_yaml_workers_is_the_number_of_scoring_tasks(tmp_path: Path, workers_seen: list[Any]) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINE.format(name="w1", extra="ray: {address: local, workers: 1}\n"))
    assert main(["run", str(tmp_path / "p.yaml"), "--store", str(tmp_path / "st")]) == 0
    assert workers_seen and set(workers_seen) == {1}
    params = _lineage(tmp_path / "st")
    assert params and all(p["ray"] == {"address": "local", "workers": 1} for p in params)


def test_run_ray_flag_puts_a_pipeline_without_ray_on_ray(tmp_path: Path, workers_seen: list[Any]) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINE.format(name="flag", extra=""))
    assert main(["run", str(tmp_path / "p.yaml"), "--store", str(tmp_path / "st"), "--ray", "local"]) == 0
    assert workers_seen and set(workers_seen) == {2}  # the default number of workers
    params = _lineage(tmp_path / "st")
    assert params and all(p["ray"]["address"] == "local" and p["scored_on_ray"] == ["loss"] for p in params)
