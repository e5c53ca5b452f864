"""Inputs a careless or hostile user gives, each a one-line error before anything runs (no Ray, no TensorFlow)."""

from __future__ import annotations

import json

import pytest

import hindsight_ray as hr
from hindsight_ray import cli
from hindsight_ray.config import load_config
from hindsight_ray.core.location import ExperimentLocation
from hindsight_ray.errors import UserError


def test_a_key_given_twice_in_a_config_file_is_refused(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("seed: 1\nsearch:\n  stage1:\n    epochs: 3\n    epochs: 30\n")
    with pytest.raises(UserError, match=r"the key 'epochs' is given twice \(line 5\)"):
        load_config(path)


@pytest.mark.parametrize("override", ["search.stage1.units=[4, '8']", "search.stage1.epochs='5'", "seed='0'"])
def test_counts_given_as_text_are_refused(override):
    with pytest.raises(UserError, match="expected a whole number, not the text"):
        load_config(None, [override])


def test_a_learning_rate_written_1e_3_still_reads_as_a_number():
    assert load_config(None, ["search.stage1.learning_rate=1e-3"]).search.stage1.learning_rate == 0.001


@pytest.mark.parametrize("rate", ["1e-320", "5e-324", "1e-39"])
def test_learning_rates_float32_holds_as_zero_are_refused(rate):
    with pytest.raises(UserError, match="too small to train with"):
        load_config(None, [f"search.stage2.max_learning_rate={rate}"])


@pytest.mark.parametrize("name", ["two\nlines", "tab\there", "bell\x07"])
def test_names_with_control_characters_are_refused(name):
    with pytest.raises(UserError, match="control character"):
        hr.api.resolve_config(None, [], {"name": name})


def test_a_home_of_no_user_is_one_line():
    with pytest.raises(UserError, match="~nosuchuser-hr names no user's home folder"):
        ExperimentLocation.parse("~nosuchuser-hr/results")


def test_a_damaged_summary_is_a_user_error_for_load(tmp_path):
    (tmp_path / "summary.json").write_text('{"best": ')
    with pytest.raises(UserError, match="summary.json is damaged"):
        hr.load(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps([1, 2]))
    with pytest.raises(UserError, match="does not hold a sweep summary"):
        hr.load(tmp_path)


def test_predict_never_writes_into_the_experiment(tmp_path, capsys):
    experiment = tmp_path / "exp"
    experiment.mkdir()
    (experiment / "trials.parquet").write_bytes(b"the experiment's own table")
    data = tmp_path / "rows.csv"
    data.write_text("month,passengers\n1949-01,112\n")
    code = cli.main(["predict", str(experiment), "--data", str(data), "--out", str(experiment / "trials.parquet")])
    assert code == 2 and "inside the experiment" in capsys.readouterr().err
    assert (experiment / "trials.parquet").read_bytes() == b"the experiment's own table"
