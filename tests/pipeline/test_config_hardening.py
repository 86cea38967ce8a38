"""Hardening of pipeline files: YAML anchors/aliases and duplicate keys are refused, and every value
the runner would refuse (or crash on) fails while the file is parsed, naming the key and its line,
before ``modyn-store run`` creates a store folder."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from modyn_store.app.cli.main import main
from modyn_store.app.pipeline import PipelineConfigError, parse_pipeline
from modyn_store.app.pipeline.yamlsrc import read_yaml

BASE = """\
name: p
source: {dataset: elec2, limit: 300, chunk: "14d"}
model: {name: logreg}
trigger: {name: time, every: "14d"}
evaluation: {slices: 2}
"""

# (id, line of BASE to replace (or "" to append a line), new text, key named, line named)
CASES = [
    ("anchor_alias", "", "training: {epochs: &e 1, batch_size: *e}", "training.epochs", 6),
    ("duplicate_top_level", "", "training: {epochs: 1}\ntraining: {epochs: 50}", "training", 7),
    ("duplicate_nested", "", "training: {epochs: 1, epochs: 50}", "training.epochs", 6),
    ("update_scope", "", "update: {name: finetune, scope: nope}", "update.scope", 6),
    ("update_retrain_scope", "", "update: {name: periodic_retrain, every: 2, retrain_scope: nope}",
     "update.retrain_scope", 6),
    ("update_finetune_scope", "", "update: {name: periodic_retrain, every: 2, finetune_scope: nope}",
     "update.finetune_scope", 6),
    ("model_param_unknown", "model: {name: logreg}", "model: {name: mlp, params: {hiddne: [3]}}",
     "model.params.hiddne", 3),
    ("model_param_negative", "model: {name: logreg}", "model: {name: mlp, params: {hidden: [-3]}}",
     "model.params.hidden[0]", 3),
    ("training_device", "", "training: {device: nonsense}", "training.device", 6),
    # devices torch parses but training cannot run on (it failed mid-run, after the ingest)
    ("training_device_meta", "", "training: {device: meta}", "training.device", 6),
    ("training_device_mps", "", "training: {device: mps}", "training.device", 6),
    ("training_seed", "", f"training: {{seed: {2**80}}}", "training.seed", 6),
    ("training_epochs", "", f"training: {{epochs: {10**21}}}", "training.epochs", 6),
    ("training_threads", "", "training: {threads: 1000000000}", "training.threads", 6),
    # combinations the trainer refuses, and inputs the model's forward does not take
    ("training_momentum_adam", "", "training: {momentum: 0.9}", "training.momentum", 6),
    ("training_momentum_adamw", "", "training: {optimizer: adamw, momentum: 0.5}", "training.momentum", 6),
    ("model_input_unknown", "model: {name: logreg}", "model: {name: logreg, inputs: {feats: features}}",
     "model.inputs.feats", 3),
    ("model_input_missing", "model: {name: logreg}", "model: {name: dlrm, inputs: {dense: features}}",
     "model.inputs", 3),
    ("evaluation_seed", "evaluation: {slices: 2}", f"evaluation: {{slices: 2, seed: {2**80}}}", "evaluation.seed", 5),
    ("source_chunk_overflow", 'chunk: "14d"', 'chunk: "99999999999999999999999d"', "source.chunk", 2),
    ("time_every_rounds_to_0ns", 'every: "14d"}', 'every: "0.4ns"}', "trigger.every", 4),
    ("time_every_overflow", 'every: "14d"}', 'every: "99999999999999999999999d"}', "trigger.every", 4),
    ("time_start_nan", 'every: "14d"}', 'every: "14d", start: .nan}', "trigger.start", 4),
    ("time_start_inf", 'every: "14d"}', 'every: "14d", start: .inf}', "trigger.start", 4),
    # a parameter the policy needs, given empty: named by its key, as the file spells it
    ("policy_param_given_empty", "trigger: {name: time, every: \"14d\"}",
     "trigger: {name: data_drift, window: 100, columns: []}", "trigger.columns", 4),
    # numbers YAML 1.1 reads other than they are written: 010 is octal 8, 1:40 is base-60 100
    ("yaml_octal_int", "", "training: {epochs: 010}", "training.epochs", 6),
    ("yaml_base60_int", 'trigger: {name: time, every: "14d"}', "trigger: {name: data_amount, every: 1:40}",
     "trigger.every", 4),
    ("policy_int_overflow", "trigger: {name: time, every: \"14d\"}",
     f"trigger: {{name: data_drift, columns: [features], history: {10**30}}}", "trigger.history", 4),
    # an option the chosen decision does not read: refused, not silently ignored
    ("drift_option_the_decision_ignores", "trigger: {name: time, every: \"14d\"}",
     "trigger: {name: data_drift, columns: [features], metric: ks, decision: threshold, threshold: 0.2, "
     "quantile: 0.9}", "trigger.quantile", 4),
    # params of a wrong type that is falsy: not read as "no parameters"
    ("model_params_list", "model: {name: logreg}", "model: {name: logreg, params: []}", "model.params", 3),
    ("model_params_false", "model: {name: logreg}", "model: {name: logreg, params: false}", "model.params", 3),
    ("source_params_zero", 'chunk: "14d"', 'chunk: "14d", params: 0', "source.params", 2),
    # a part of a composite trigger is named by its own key and line
    ("composite_part", 'trigger: {name: time, every: "14d"}',
     'trigger:\n  name: any\n  triggers:\n    - {name: time, every: "14d"}\n    - {name: data_amount, every: 0}',
     "trigger.triggers[1].every", 8),
    ("composite_part_unknown_param", 'trigger: {name: time, every: "14d"}',
     "trigger:\n  name: all\n  triggers:\n    - {name: data_amount, every: 5, evry: 3}",
     "trigger.triggers[0].evry", 7),
    # ... and so is a drift trigger's warm-up trigger (not the drift trigger's own `every`), and a
    # part of a composed selection
    ("warmup_trigger_part", 'trigger: {name: time, every: "14d"}',
     "trigger:\n  name: data_drift\n  columns: [features]\n  warmup_trigger:\n    name: data_amount\n    every: 0",
     "trigger.warmup_trigger.every", 9),
    ("compose_part", "",
     "selection:\n  name: compose\n  pre: {name: uniform, ratio: 0.5}\n  post: {name: uniform, ratio: 9}",
     "selection.post.ratio", 9),
]


def _text(old: str, new: str) -> str:
    if not old:
        return BASE + new + "\n"
    assert BASE.count(old) == 1
    return BASE.replace(old, new)


@pytest.mark.parametrize(("old", "new", "key", "line"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse_refuses_with_key_and_line(old: str, new: str, key: str, line: int) -> None:
    with pytest.raises(PipelineConfigError) as info:
        parse_pipeline(read_yaml(_text(old, new), "p.yaml"))
    err = info.value
    assert (err.key, err.line) == (key, line)
    assert str(err).startswith(f"p.yaml:{line}: {key}: ")


@pytest.mark.parametrize(("old", "new", "key", "line"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_run_refuses_before_creating_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str,
                                               new: str, key: str, line: int) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(_text(old, new))
    store = tmp_path / "store"
    assert main(["run", str(path), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line}: {key}: " in err
    assert "invalid --" not in err  # not reworded as a command-line flag
    assert not store.exists()


def test_alias_bomb_is_refused_before_expansion() -> None:
    # 6 nested levels of 10 aliases each: 10**6 leaves if expanded (x10 time and memory per level)
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 6)]
    t0 = time.perf_counter()
    with pytest.raises(PipelineConfigError) as info:
        read_yaml("\n".join(lines) + "\n", "bomb.yaml")
    assert time.perf_counter() - t0 < 0.5
    assert (info.value.key, info.value.line) == ("a0", 1)
    assert "anchor &a0" in str(info.value)


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("a: 1\nb:\n  - x\n  - &y {c: 1}\n", "b[1]", 4),  # an anchor alone
        ("a: [1]\nb: *nowhere\n", "b", 2),  # an alias alone
        ("a: {x: 1}\nb:\n  <<: {x: 2}\n", "b.<<", 3),  # a merge key (no alias needed)
        ("a:\n  - {k: 1}\n  - {k: 2, k: 3}\n", "a[1].k", 3),  # duplicates inside a list item
        ("1: a\ntrue: b\n", "true", 2),  # 1 and true are one key of the loaded mapping
    ],
)
def test_read_yaml_refuses_shared_and_repeated_nodes(text: str, key: str, line: int) -> None:
    with pytest.raises(PipelineConfigError) as info:
        read_yaml(text, "x.yaml")
    assert (info.value.key, info.value.line) == (key, line)



def test_numbers_and_dates_read_as_written() -> None:
    # YAML 1.1 (PyYAML) reads 1e-3 and -.5 as text and an unquoted date as a date object, which the
    # settings then refused as "expected a float, got str '1e-3'" / "expected an ISO datetime string"
    text = BASE.replace('every: "14d"}', 'every: "14d", start: 1996-05-07 12:00:00}') + "training: {lr: 1e-3}\n"
    cfg = parse_pipeline(read_yaml(text, "p.yaml"))
    assert cfg.training.lr == 0.001
    assert cfg.trigger["start"] == "1996-05-07 12:00:00"
    doc = read_yaml("a: 5E4\nb: -.5\nc: 1.5e+3\nd: 0x10\ne: 1_000\nf: '010'\ng: 2024-01-01\nh: 0\n")
    assert doc.data == {"a": 50000.0, "b": -0.5, "c": 1500.0, "d": 16, "e": 1000, "f": "010", "g": "2024-01-01",
                        "h": 0}
    import datetime

    import yaml

    assert yaml.safe_load("g: 2024-01-01") == {"g": datetime.date(2024, 1, 1)}  # PyYAML itself is left as it is
