"""Inputs a careless or hostile user gives, each a one-line error before anything runs (no Ray, no TensorFlow)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import hindsight_ray as hr
import hindsight_ray.api
from hindsight_ray import cli
from hindsight_ray.config.schema import load_config
from hindsight_ray.core.errors import UserError
from hindsight_ray.core.location import ExperimentLocation
from hindsight_ray.reporting.predictor import checked_texts, read_preprocessing


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


SERIES_PRE = {
    "kind": "timeseries", "targets": ["y"], "numeric": ["y"], "inputs": ["y"], "categories": {}, "date_column": "d",
    "lags": 3, "horizon": 1, "log": False, "difference": True, "missing": "error", "offset": [0.0], "scale": [1.0],
}  # fmt: skip


def test_a_whole_preprocessing_file_is_read_back():
    assert read_preprocessing(json.dumps(SERIES_PRE), "p.json") == SERIES_PRE
    text = {"kind": "text", "vocabulary": ["", "[UNK]", "good"], "max_length": 5, "text_column": "t", "classes": []}
    assert read_preprocessing(json.dumps(text), "p.json") == text
    assert read_preprocessing('{"fingerprint": {}}', "p.json") == {"fingerprint": {}}  # token ids: nothing to replay


@pytest.mark.parametrize(
    ("tamper", "names"),
    [
        (lambda p: "{not json", "not JSON"),
        (lambda p: json.dumps([p]), "not an object"),
        (lambda p: json.dumps({**p, "kind": "images"}), "kind"),
        (lambda p: json.dumps({**p, "lags": "3"}), "lags"),
        (lambda p: json.dumps({**p, "lags": True}), "lags"),
        (lambda p: json.dumps({**p, "lags": 0}), "lags"),
        (lambda p: json.dumps({k: v for k, v in p.items() if k != "scale"}), "scale"),
        (lambda p: json.dumps({**p, "scale": [0.0]}), "zero"),
        (lambda p: json.dumps({**p, "offset": [1.0, 2.0]}), "offset"),
        (lambda p: json.dumps({**p, "targets": ["z"]}), "targets"),
        (lambda p: json.dumps({**p, "targets": []}), "targets"),
        (lambda p: json.dumps({**p, "categories": {"c": [1]}}), "categories"),
        (lambda p: json.dumps({**p, "date_column": 5}), "date_column"),
        (lambda p: json.dumps({**p, "seasonal_lag": -12}), "seasonal_lag"),
        (lambda p: json.dumps({**p, "seasonal_lag": True}), "seasonal_lag"),
    ],
)
def test_a_tampered_preprocessing_file_is_one_line_naming_the_field(tamper, names):
    with pytest.raises(UserError, match=names) as caught:
        read_preprocessing(tamper(SERIES_PRE), "exp/preprocessing.json")
    assert str(caught.value).startswith("exp/preprocessing.json: ") and "\n" not in str(caught.value)


def test_texts_to_classify_are_checked_row_by_row():
    assert checked_texts([]) == [] and checked_texts(pd.Series([], dtype=object)) == []
    assert checked_texts(("a", "b")) == ["a", "b"]
    with pytest.raises(UserError, match="wrap a single text"):
        checked_texts("one review")
    for rows, message in [
        (["fine", None], "row 1 is missing"),
        (pd.Series(["x", "y", np.nan]), "row 2 is missing"),
        ([3], "row 0 is int 3, not text"),
        (["ok", b"bytes"], "row 1 is bytes"),
    ]:
        with pytest.raises(UserError, match=message):
            checked_texts(rows)


def test_report_on_a_damaged_trials_table_is_one_line(tmp_path, capsys):
    (tmp_path / "summary.json").write_text(json.dumps({"metric": "val_rmse", "mode": "min", "best": None}))
    (tmp_path / "trials.parquet").write_bytes(b"PAR1 cut short")
    (tmp_path / "epochs.parquet").write_bytes(b"")
    assert cli.main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path}/trials.parquet is damaged (")
    with pytest.raises(UserError, match="trials.parquet is damaged"):
        _ = hr.load(tmp_path).trials


def test_a_config_record_that_is_not_json_stops_resume_in_one_line(tmp_path, capsys):
    experiment = tmp_path / "exp"
    experiment.mkdir()
    (experiment / "config.json").write_text('{"seed": ')
    code = cli.main(["resume", str(experiment)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: {experiment}/config.json is damaged (not readable JSON)"], err


def test_resume_of_a_folder_a_live_sweep_has_just_made_says_in_use(tmp_path, capsys):
    from hindsight_ray.running.lock_and_signals import experiment_lock

    experiment = tmp_path / "cell"
    with experiment_lock(str(experiment), create=True):  # made and locked; config.json not written yet
        assert cli.main(["resume", str(experiment)]) == 2
        err = capsys.readouterr().err
        assert "is in use by a running sweep (pid" in err and "not a hindsight-ray experiment" not in err
    assert cli.main(["resume", str(experiment)]) == 2  # the lock let go: an empty folder is just not an experiment
    assert "is not a hindsight-ray experiment folder" in capsys.readouterr().err
