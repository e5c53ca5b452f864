"""The config: defaults, YAML files, --set overrides, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hindsight_ray.config.schema import (
    apply_overrides,
    build_config,
    config_to_dict,
    load_config,
    parse_override,
)
from hindsight_ray.core.errors import UserError

LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "examples" / "sweeps"


def test_defaults_match_the_design():
    config = load_config()
    assert config.storage == "./hindsight_results" and config.seed == 0
    assert config.data.source == "builtin:airline" and config.data.lags == 12
    assert config.search.stage1.layers == [1, 2] and config.search.stage1.units == [8, 16, 32, 64]
    assert config.search.stage2.max_iterations == 16 and config.search.stage2.max_learning_rate == 0.02
    assert (config.task, config.metric, config.mode) == ("regression", "val_rmse", "min")
    assert config.run.max_failures == 2 and config.run.checkpoint_every == "auto"


def test_text_resolves_to_classification_on_accuracy():
    config = load_config(None, ["data.kind=text"])
    assert (config.task, config.metric, config.mode) == ("classification", "val_accuracy", "max")


def test_overrides_are_parsed_as_yaml():
    assert parse_override("search.stage1.units=[8, 16]") == (["search", "stage1", "units"], [8, 16])
    assert parse_override("resources.address=ray://head:10001")[1] == "ray://head:10001"
    raw = apply_overrides({"search": {"stage1": {"epochs": 3}}}, ["search.stage1.units=[4]", "seed=7"])
    assert raw == {"search": {"stage1": {"epochs": 3, "units": [4]}}, "seed": 7}


def test_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\nsearch:\n  stage1:\n    units: [4, 8]\n")
    config = load_config(path, ["search.stage1.units=[16]"])
    assert config.seed == 3 and config.search.stage1.units == [16]


def test_round_trip_through_plain_dict():
    config = load_config(None, ["data.target=passengers"])
    assert config.data.target == ["passengers"]
    assert build_config(config_to_dict(config)) == config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.lag=3"], "unknown config key data.lag; did you mean data.lags?"),
        (["zzz=1"], "unknown config key zzz"),
        (["data.lags=0"], "config key data.lags: Input should be greater than or equal to 1"),
        (["data.lags=many"], "config key data.lags"),
        (["search.stage1.units=[4,4]"], "grid values repeat"),
        (["resources.gpus_per_trial=1.5"], "whole number"),
        (["name=a/b"], "plain folder name"),
        (["data.kind=text", "search.metric=val_rmse"], "needs a regression task"),
        (["search.stage1.layers"], "expected KEY=VALUE"),
        (["seed.x=1"], "config key seed: Input should be a valid integer"),
    ],
)
def test_mistakes_are_one_line_errors(overrides, message):
    with pytest.raises(UserError) as caught:
        load_config(None, overrides)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_override_below_a_value_is_refused():
    with pytest.raises(UserError, match="seed is a value, not a section"):
        apply_overrides({"seed": 1}, ["seed.x=1"])


def test_config_file_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("a: [\n")
    with pytest.raises(UserError, match="not valid YAML at line"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert load_config(tmp_path / "empty.yaml") == load_config()


@pytest.mark.parametrize("path", sorted(LAUNCH.glob("*.yaml")), ids=lambda p: p.name)
def test_example_sweeps_are_valid(path):
    load_config(path)


@pytest.mark.parametrize(("overrides", "slots", "expected"), [
    ([], 2, False),  # one trial would run at a time anyway besides the one the rule waits for
    ([], 3, True),
    (["resources.cpus_per_trial=0.5"], 4, False),  # four trials on two cores: speculation slows the needed one
    (["resources.gpus_per_trial=0.25"], 8, False),  # four trials on one GPU: the same
    (["resources.gpus_per_trial=1"], 8, True),
    (["resources.cpus_per_trial=0.5", "search.stage2.speculative=true"], 4, True),  # asked for: on
    (["search.stage2.speculative=false"], 8, False),
])
def test_speculation_is_on_by_default_where_extra_trials_have_hardware_of_their_own(overrides, slots, expected):
    from hindsight_ray.config.schema import speculative_for

    config = load_config(None, overrides)
    assert speculative_for(config.search.stage2.speculative, slots, config.resources) is expected


def test_a_bundled_datasets_preprocessing_applies_only_when_it_is_the_source():
    from hindsight_ray.api import resolve_config

    airline = resolve_config(None, ["data.lags=6"])
    assert (airline.data.log, airline.data.difference, airline.data.scale) == (True, True, "standard")
    assert airline._origins["log"] == "dataset builtin:airline" and airline._origins["lags"] == "--set"
    own = resolve_config(None, [], {"data.source": "dataframe"})  # what hr.sweep(data=frame) resolves
    assert (own.data.log, own.data.difference, own.data.scale) == (False, False, "minmax")
    assert own._origins["log"] == "default"
    again = resolve_config(airline, [], {"data.source": "dataframe"})  # a SweepConfig made for airline, reused
    assert (again.data.log, again.data.scale, again._origins["lags"]) == (False, "minmax", "--set")
    mine = resolve_config({"data": {"log": False}}, [])
    assert mine.data.log is False and mine._origins["log"] == "config" and mine.data.difference is True


def test_the_dry_run_prints_each_preprocessing_value_and_where_it_came_from(tmp_path, capsys):
    from hindsight_ray.cli import main

    assert main(["sweep", "--dry-run", "--set", f"storage={tmp_path}", "--set", "data.lags=6"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("preprocess"))
    assert "lags=6 (--set)" in line and "log=true (dataset builtin:airline)" in line
    assert "season=12 (inferred from the dates)" in line and "horizon=1 (default)" in line


def test_a_sweep_recorded_before_seasonal_differencing_resumes_without_it(tmp_path):
    import json

    from hindsight_ray.config.schema import config_to_dict
    from hindsight_ray.core.experiment import ExperimentStore
    from hindsight_ray.running.runner import _recorded_config

    recorded = config_to_dict(load_config(None, []))
    del recorded["data"]["seasonal_difference"]  # as config.json was written before the key existed
    (tmp_path / "config.json").write_text(json.dumps(recorded))
    config, _, _ = _recorded_config(ExperimentStore(tmp_path), "old", [])
    assert config.data.seasonal_difference is False and config.data.log is True
