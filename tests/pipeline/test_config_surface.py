"""Options of pipeline definitions and of `run` that must act or be refused, never be ignored."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.app.cli.main import main
from modyn_store.app.pipeline.config import parse_pipeline
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.online import OnlineRunner
from modyn_store.core.errors import InvalidArgumentError

CFG: dict[str, Any] = {"name": "p", "source": {"dataset": "elec2"}, "model": {"name": "logreg"},
                       "trigger": {"name": "data_amount", "every": 20}}


@pytest.mark.parametrize(("over", "key"), [
    ({"trigger": {"name": "data_amount", "every": 2**70}}, "trigger.every"),
    ({"trigger": {"name": "any", "triggers": [{"name": "data_amount", "every": 2**64}]}}, "trigger.triggers[0].every"),
    ({"selection": {"name": "new_data", "limit": 2**64}}, "selection.limit"),
    ({"model": {"name": "mlp", "params": {"hidden": [2**70]}}}, "model.params.hidden[0]"),
    ({"trigger": {"name": "data_amount", "every": -(2**63) - 1}}, "trigger.every"),
])
def test_integers_beyond_64_bits_are_refused_in_policy_and_model_parameters(over: dict[str, Any], key: str) -> None:
    with pytest.raises(PipelineConfigError) as info:
        parse_pipeline({**CFG, **over})
    assert info.value.key == key
    assert "2^63" in info.value.message


def test_the_64_bit_bounds_themselves_are_accepted() -> None:
    cfg = parse_pipeline({**CFG, "selection": {"name": "new_data", "limit": 2**63 - 1}})
    assert cfg.selection["limit"] == 2**63 - 1


@pytest.mark.parametrize("kwargs", [{"poll": math.nan}, {"poll": -1.0}, {"poll": math.inf}, {"progress_every": 0}])
def test_online_runner_refuses_bad_follow_settings_before_making_the_store(tmp_path: Path,
                                                                           kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        OnlineRunner(parse_pipeline(CFG), tmp_path / "live", **kwargs)
    assert info.value.name == next(iter(kwargs))
    assert not (tmp_path / "live").exists()


@pytest.mark.timeout(60)  # a NaN idle timeout that is not refused waits for ever
@pytest.mark.parametrize("kwargs", [{"idle_timeout": math.nan}, {"idle_timeout": -1.0}, {"stop_after": -1}])
def test_online_run_refuses_bad_stop_settings_and_writes_nothing(kwargs: dict[str, Any]) -> None:
    store = Store.open("memory://online-bad-stop-" + next(iter(kwargs)), create=True)
    x = np.random.default_rng(0).standard_normal((30, 2)).astype(np.float32)
    store.append(pa.table({"ts": np.arange(30), "label": (x[:, 0] > 0).astype(np.int64),
                           "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
    before = [r.version for r in store.log()]
    with pytest.raises(InvalidArgumentError) as info:
        OnlineRunner(parse_pipeline(CFG), store, poll=0.01).run(**kwargs)
    assert info.value.name == next(iter(kwargs))
    assert [r.version for r in store.log()] == before


@pytest.mark.parametrize("flags", [["--stop-after", "3"], ["--poll", "0.5"], ["--idle-timeout", "1"],
                                   ["--online", "--poll", "nan"], ["--online", "--stop-after", "-1"],
                                   ["--online", "--idle-timeout", "-1"]])
def test_run_refuses_follow_flags_that_would_be_ignored_or_mean_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str]) -> None:
    (tmp_path / "p.yaml").write_text("name: p\nsource: {dataset: elec2, chunk: '28d'}\nmodel: {name: logreg}\n"
                                     "trigger: {name: time, every: '56d'}\n")
    store = tmp_path / "runs"
    assert main(["run", str(tmp_path / "p.yaml"), "--store", str(store), *flags]) == 2
    flag = next(f for f in flags if f != "--online")
    assert flag in capsys.readouterr().err
    assert not store.exists()


@pytest.mark.parametrize(("over", "key"), [
    ({"source": {"dataset": "synthetic_clicks", "encode": "clicks", "seed": 5}}, "source.seed"),
    ({"source": {"dataset": "elec2", "seed": 5}}, "source.seed"),
    ({"evaluation": {"seed": 7}}, "evaluation.seed"),
])
def test_a_seed_that_would_change_nothing_is_refused(over: dict[str, Any], key: str) -> None:
    raw = {**CFG, **over}
    if over.get("source", {}).get("dataset") == "synthetic_clicks":
        raw["model"] = {"name": "dlrm", "inputs": {"dense": "dense", "sparse": "sparse"}}
    with pytest.raises(PipelineConfigError) as info:
        parse_pipeline(raw)
    assert info.value.key == key


def test_seeds_with_what_they_seed_and_round_trips_are_accepted() -> None:
    cfg = parse_pipeline({**CFG, "source": {"dataset": "elec2", "fraction": 0.5, "seed": 5},
                          "evaluation": {"sample": 10, "seed": 7}})
    assert (cfg.source.seed, cfg.evaluation.seed) == (5, 7)
    assert parse_pipeline(cfg.to_dict()) == cfg
    assert parse_pipeline(parse_pipeline(CFG).to_dict()).source.seed == 0


def test_an_unsafe_product_label_is_named_where_it_is_written() -> None:
    from modyn_store.app.pipeline import parse_grid
    from modyn_store.app.pipeline.yamlsrc import read_yaml

    doc = read_yaml("base:\n  source: {dataset: elec2}\n  model: {name: logreg}\nproduct:\n  trigger:\n"
                    "    ../x: {name: data_amount, every: 5}\n", "grid.yaml")
    with pytest.raises(PipelineConfigError) as info:
        parse_grid(doc)
    assert info.value.key == "product.trigger.../x"
    assert info.value.line == 6


def test_a_missing_data_folder_is_refused_rather_than_replaced_by_the_bundled_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modyn_store.app.pipeline.source import DATA_ENV, resolve_path

    monkeypatch.delenv(DATA_ENV, raising=False)
    source = parse_pipeline(CFG).source
    with pytest.raises(PipelineConfigError) as info:
        resolve_path(source, tmp_path / "typo")
    assert info.value.key == "data_dir" and "typo" in info.value.message
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "typo"))
    with pytest.raises(PipelineConfigError, match=DATA_ENV):
        resolve_path(source)
    monkeypatch.delenv(DATA_ENV)
    assert resolve_path(source) is not None  # no folder given at all: Elec2's bundled copy


@pytest.mark.parametrize(("over", "key"), [
    ({"source": {"store": "st", "chunk": "n:5"}}, "source.chunk"),
    ({"source": {"store": "st", "limit": 5}}, "source.limit"),
    ({"source": {"store": "st", "fraction": 0.5}}, "source.fraction"),
    ({"source": {"store": "st", "columns": ["x"]}}, "source.columns"),
    ({"source": {"store": "st"}, "deletions": {"every": 1, "fraction": 0.5}}, "deletions"),
])
def test_a_store_source_refuses_what_its_replay_would_ignore(tmp_path: Path, over: dict[str, Any],
                                                             key: str) -> None:
    st = Store.open(str(tmp_path / "st"), create=True)
    st.append(pa.table({"ts": [1, 2], "x": [0.1, 0.2], "label": [0, 1]}))
    over = {**over, "source": {**over["source"], "store": str(tmp_path / "st")}}
    with pytest.raises(PipelineConfigError) as info:
        parse_pipeline({**CFG, **over})
    assert info.value.key == key


def test_fewer_model_classes_than_the_data_has_is_refused_before_the_store_is_made(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text("name: p\nsource: {dataset: elec2, chunk: 'n:200', limit: 400}\n"
                                     "model: {name: mlp, params: {n_classes: 1}}\n"
                                     "trigger: {name: data_amount, every: 200}\nevaluation: {slices: 2}\n")
    assert main(["run", str(tmp_path / "p.yaml"), "--store", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "model.params.n_classes" in err and "2 classes" in err
    assert not (tmp_path / "runs").exists()


def test_online_fewer_model_classes_than_the_store_has_is_refused() -> None:
    store = Store.open("memory://online-few-classes", create=True)
    x = np.random.default_rng(0).standard_normal((30, 2)).astype(np.float32)
    store.append(pa.table({"ts": np.arange(30), "label": (x[:, 0] > 0).astype(np.int64),
                           "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
    cfg = parse_pipeline({**CFG, "model": {"name": "logreg", "params": {"n_classes": 1}}})
    with pytest.raises(PipelineConfigError) as info:
        OnlineRunner(cfg, store, poll=0.01).run(idle_timeout=0.05)
    assert info.value.key == "model.params.n_classes"
