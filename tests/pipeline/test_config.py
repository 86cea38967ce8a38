"""Pipeline and grid definitions: validation names the bad key and its line, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modyn_store.app.cli.main import main
from modyn_store.app.pipeline import PipelineConfigError, load_definition, parse_grid, parse_pipeline, scenario_names
from modyn_store.app.pipeline.runner import Runner
from modyn_store.app.pipeline.yamlsrc import read_yaml

from pipeline_helpers import tiny

GOOD = """\
name: p1
source:
  dataset: elec2
  limit: 2000
model:
  name: logreg
trigger:
  name: data_amount
  every: 500
selection:
  name: new_data
update:
  name: finetune
training:
  epochs: 1
"""


def _bad(text: str) -> PipelineConfigError:
    with pytest.raises(PipelineConfigError) as info:
        parse_pipeline(read_yaml(text, "p.yaml"))
    return info.value


def test_good_file_round_trips() -> None:
    cfg = parse_pipeline(read_yaml(GOOD, "p.yaml"))
    assert cfg.trigger == {"name": "data_amount", "every": 500}
    again = parse_pipeline(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
    assert again == cfg


@pytest.mark.parametrize(
    ("old", "new", "key", "line"),
    [
        ("  name: data_amount", "  name: no_such_trigger", "trigger.name", 8),
        ("  every: 500", "  every: five", "trigger.every", 9),
        ("  every: 500", "  evry: 500", "trigger.evry", 9),
        ("  epochs: 1", "  epochs: 0", "training.epochs", 15),
        ("  epochs: 1", "  epocs: 1", "training.epocs", 15),
        ("  limit: 2000", "  limit: -5", "source.limit", 4),
        ("  dataset: elec2", "  dataset: nope", "source.dataset", 3),
        ("  name: logreg", "  name: resnet9000", "model.name", 6),
        ("  name: finetune", "  name: periodic_retrain\n  every: 0", "update.every", 14),
        ("  name: new_data", "  name: uniform\n  ratio: 1.5", "selection.ratio", 12),
    ],
)
def test_bad_values_name_key_and_line(old: str, new: str, key: str, line: int) -> None:
    assert old in GOOD
    err = _bad(GOOD.replace(old, new, 1))
    assert err.key == key
    assert err.line == line
    assert f"p.yaml:{line}: {key}" in str(err)


def test_unknown_top_level_key_and_missing_section() -> None:
    err = _bad(GOOD + "colour: blue\n")
    assert (err.key, err.line) == ("colour", 16)
    err = _bad(GOOD.replace("trigger:\n  name: data_amount\n  every: 500\n", ""))
    assert err.key == "trigger"


def test_invalid_yaml_names_line() -> None:
    err = _bad("name: x\nsource: {dataset: elec2\nmodel: 3\n")
    assert err.line is not None and err.key == "<document>"


def test_missing_column_fails_before_any_work(tmp_path: Path) -> None:
    cfg = parse_pipeline(tiny(model={"name": "logreg", "inputs": {"features": "no_such_column"}}))
    store = tmp_path / "store"
    with pytest.raises(PipelineConfigError) as info:
        Runner(cfg, store).prepare()
    assert info.value.key == "model.inputs.features"
    assert not store.exists()
    cfg = parse_pipeline(tiny(trigger={"name": "data_drift", "columns": ["nope"]}))
    with pytest.raises(PipelineConfigError) as info:
        Runner(cfg, store).prepare()
    assert info.value.key == "trigger.columns"
    assert not store.exists()


def test_cli_rejects_bad_file_before_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("  every: 500", "  every: -1"))
    store = tmp_path / "store"
    assert main(["run", str(bad), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:9: trigger.every" in err
    assert not store.exists()


def test_grid_errors_point_into_entry_or_base() -> None:
    text = """\
title: t
base:
  source: {dataset: elec2}
  model: {name: logreg}
  training: {epochs: 1}
pipelines:
  - name: a
    trigger: {name: time, every: 7d}
  - name: b
    trigger:
      name: data_amount
      every: 0
"""
    with pytest.raises(PipelineConfigError) as info:
        parse_grid(read_yaml(text, "g.yaml"))
    assert (info.value.key, info.value.line) == ("pipelines[1].trigger.every", 12)
    with pytest.raises(PipelineConfigError) as info:
        parse_grid(read_yaml(text.replace("{epochs: 1}", "{epochs: 1.5}").replace("every: 0", "every: 3"), "g.yaml"))
    assert (info.value.key, info.value.line) == ("base.training.epochs", 5)
    with pytest.raises(PipelineConfigError) as info:
        parse_grid(read_yaml(text.replace("name: b", "name: a").replace("every: 0", "every: 3"), "g.yaml"))
    assert "unique" in info.value.message


_GRID_ENTRY = "pipelines:\n  - {name: a, source: {dataset: elec2}, model: {name: logreg}, trigger: {name: data_amount, every: 9}}\n"


@pytest.mark.parametrize(("head", "key"), [
    ("title: [a, b]\n", "title"),
    ("description: 5\n", "description"),
    ("base: []\n", "base"),
    ("base: 0\n", "base"),
])
def test_grid_title_description_and_base_types(head: str, key: str) -> None:
    with pytest.raises(PipelineConfigError) as info:
        parse_grid(read_yaml(head + _GRID_ENTRY, "g.yaml"))
    assert (info.value.key, info.value.line) == (key, 1)


def test_grid_null_title_is_the_default() -> None:
    grid = parse_grid(read_yaml("title: null\ndescription: null\n" + _GRID_ENTRY, "g.yaml"))
    assert (grid.title, grid.description) == ("Benchmark report", "")


def test_shipped_scenarios_parse_and_cover_the_default_grid() -> None:
    names = scenario_names()
    assert {"elec2", "noaa_weather", "reuters21578", "movielens100k", "synthetic_clicks"} <= set(names)
    for name in names:
        grid = parse_grid(load_definition(name))
        if name.endswith("_large"):  # scale scenarios measure the pipeline at scale, not a policy grid
            assert all(p.evaluation.sample is not None for p in grid.pipelines), name
            continue
        updates = {p.update["name"] for p in grid.pipelines}
        selections = {p.selection["name"] for p in grid.pipelines}
        triggers = {p.trigger["name"] for p in grid.pipelines}
        assert {"finetune", "retrain", "periodic_retrain"} <= updates, name
        assert len(selections) >= 3, name
        assert "data_drift" in triggers, name
        assert any(p.limits.max_trainings == 1 for p in grid.pipelines), name  # no retraining
        for p in grid.pipelines:
            assert p.source.path is None, name  # data comes from --data / $MODYN_STORE_DATA


def test_policy_instances_come_only_from_registry_or_installed_dotted_paths() -> None:
    err = _bad(GOOD.replace("  name: data_amount", "  name: os.system"))
    assert err.key == "trigger.name"
    err = _bad(GOOD.replace("  name: data_amount", "  name: not_installed_pkg.mod.Trigger"))
    assert "not installed" in err.message


def test_policies_needing_what_the_runner_cannot_provide_are_rejected() -> None:
    err = _bad(GOOD.replace("  name: new_data", "  name: kcenter_greedy\n  limit: 5\n  embedding: emb2"))
    assert err.key == "selection.name" and "'emb2'" in err.message
    assert "known scores" in err.message and "gradnorm" in err.message  # the registry's list
    assert err.line == 11


def test_rho_loss_and_gradnorm_are_accepted() -> None:
    for sel in ("  name: rho_loss\n  ratio: 0.5", "  name: gradnorm\n  ratio: 0.5"):
        parse_pipeline(read_yaml(GOOD.replace("  name: new_data", sel), "p.yaml"))


def test_feature_triggers_watch_the_model_inputs_where_columns_are_left_out() -> None:
    drift = {"name": "data_drift", "window": 100, "warmup_trigger": {"name": "performance"}}
    cfg = parse_pipeline(tiny(trigger={"name": "any", "triggers": [drift, {"name": "time"}]}))
    first = cfg.trigger["triggers"][0]
    assert first["columns"] == ["features"] and first["warmup_trigger"]["columns"] == ["features"]
    assert "columns" not in cfg.trigger["triggers"][1]
    # the model's input columns, each once (two inputs may read one column)
    model = {"name": "dlrm", "inputs": {"dense": "d", "sparse": "s"}}
    assert parse_pipeline(tiny(model=model, trigger={"name": "performance"})).trigger["columns"] == ["d", "s"]
    # what is given is kept; an empty list is still refused, naming its key
    assert parse_pipeline(tiny(trigger={"name": "data_drift", "columns": ["x"]})).trigger["columns"] == ["x"]
    with pytest.raises(PipelineConfigError) as info:
        parse_pipeline(tiny(trigger={"name": "performance", "columns": []}))
    assert info.value.key == "trigger.columns"
    # the filled-in columns are part of the saved definition (what a reproduction reads back)
    cfg = parse_pipeline(tiny(trigger={"name": "performance", "every": 500}))
    again = parse_pipeline(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
    assert again == cfg and again.trigger["columns"] == ["features"]


def test_a_performance_trigger_without_columns_runs_on_the_model_inputs(tmp_path: Path) -> None:
    from modyn_store.app.pipeline import run_pipeline

    cfg = parse_pipeline(tiny(trigger={"name": "performance", "every": 300, "threshold": 0.99}))
    result = run_pipeline(cfg, str(tmp_path / "s"))
    # the first training, then one per batch of 300 rows the model misjudges
    assert len(result.trainings) > 2
