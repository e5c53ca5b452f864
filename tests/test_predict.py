"""The predictor serves raw data: series forecasts in the data's units, texts classified from strings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import hindsight_ray as hr
from hindsight_ray.data import BUILTINS, builtin_path
from hindsight_ray.reporting.predictor import Predictor

pytestmark = pytest.mark.slow

TINY = ["search.stage1.layers=[1]", "search.stage1.units=[4]", "search.stage1.epochs=3",
        "search.stage2.max_iterations=1", "search.stage2.epochs=3",
        "resources.max_concurrent=1"]  # one trial worker (with its TensorFlow) per sweep, not one per slot


@pytest.fixture(scope="module")
def airline(local_ray, tmp_path_factory):
    storage = tmp_path_factory.mktemp("predict")
    return hr.sweep(overrides=[*TINY, "data.lags=6"], storage=str(storage), name="air", echo=lambda line: None,
                    report=False)


def test_the_predictor_reproduces_the_test_predictions_from_raw_passenger_counts(airline):
    raw = pd.read_csv(builtin_path(BUILTINS["airline"]))
    forecasts = airline.predictor().predict(raw)
    assert list(forecasts.columns) == ["origin", "passengers_t+1"]
    # one row per window the raw rows form: 144 rows, 12 + 1 lost to seasonal and first differences, 6 lags
    assert len(forecasts) == 144 - 13 - 6 + 1 and forecasts.origin.iloc[-1] == "1960-12-01"  # past the end
    saved = pd.read_parquet(f"{airline.experiment_dir}/test_predictions.parquet")
    joined = saved.merge(forecasts, on="origin")
    assert len(joined) == len(saved) == airline.summary["data"]["windows"][2]
    np.testing.assert_allclose(joined["passengers_t+1"], joined.predicted, rtol=1e-6)
    assert 200 < forecasts["passengers_t+1"].iloc[-1] < 800  # thousands of passengers, not scaled units
    preprocessing = json.loads(open(f"{airline.experiment_dir}/preprocessing.json").read())
    assert preprocessing["log"] and preprocessing["difference"] and preprocessing["fingerprint"]["sha256"]
    assert preprocessing["seasonal_lag"] == 12
    with pytest.raises(hr.UserError, match=r"18 rows; a forecast needs at least 19 \(lags=6 \+ 13 for differencing\)"):
        airline.predictor().predict(raw.iloc[:18])


def test_predict_command_writes_forecasts_in_the_datas_units(airline, tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    data = str(builtin_path(BUILTINS["airline"]))
    out = tmp_path / "forecast.parquet"
    done = subprocess.run([sys.executable, "-m", "hindsight_ray", "predict", airline.experiment_dir, "--data", data,
                           "--out", str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_parquet(out)
    assert len(table) == 126 and table["passengers_t+1"].between(50, 1500).all()
    bad = subprocess.run([sys.executable, "-m", "hindsight_ray", "predict", airline.experiment_dir, "--data",
                          str(tmp_path / "nope.csv")], capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [f"error: --data {tmp_path / 'nope.csv'}: file not found"]


def reviews(labels: dict[str, list[str]], rows: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    filler = ["plot", "actor", "film", "the", "scene", "story"]
    names = list(labels)
    chosen = [names[i % len(names)] for i in range(rows)]
    texts = [" ".join(rng.choice(labels[name], 3).tolist() + rng.choice(filler, 5).tolist()) for name in chosen]
    return pd.DataFrame({"text": texts, "label": chosen})


def test_a_dataframe_of_reviews_gives_a_predictor_that_classifies_raw_strings(local_ray, tmp_path):
    frame = reviews({"pos": ["great", "superb", "moving"], "neg": ["awful", "boring", "dull"]})
    result = hr.sweep(data=frame, overrides=[*TINY, "data.kind=text", "data.max_length=12",
                                             "search.stage1.learning_rate=0.01", "search.stage2.max_learning_rate=0.05"],
                      storage=str(tmp_path), name="reviews", echo=lambda line: None, report=False)
    predictor = result.predictor()
    texts = ["a great and superb film", "an awful boring plot"]
    probabilities = predictor.predict(texts)
    assert probabilities.shape == (2,) and predictor.classes == ["neg", "pos"]
    assert probabilities[0] > probabilities[1]
    fresh = subprocess.run(
        [sys.executable, "-c", "import sys, json, hindsight_ray as hr; "
         f"print(json.dumps(hr.load(sys.argv[1]).predictor().predict({texts!r}).tolist()))", result.experiment_dir],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert json.loads(fresh.stdout.strip().splitlines()[-1]) == probabilities.tolist()
    assert predictor.predict([]).shape == (0,) and predictor.predict(pd.Series([], dtype=object)).shape == (0,)
    assert predictor.predict(pd.DataFrame({"text": []})).shape == (0,)
    with pytest.raises(hr.UserError, match="row 1 is missing"):
        predictor.predict(["fine", None])


def test_three_labels_train_a_softmax_and_the_predictor_names_the_classes(local_ray, tmp_path):
    frame = reviews({"sports": ["goal", "match", "team"], "politics": ["vote", "senate", "law"],
                     "tech": ["chip", "code", "robot"]}, rows=300)
    result = hr.sweep(data=frame, overrides=[*TINY, "data.kind=text", "data.max_length=12",
                                             "search.stage1.learning_rate=0.01", "search.stage2.max_learning_rate=0.05"],
                      storage=str(tmp_path), name="topics", echo=lambda line: None, report=False)
    assert result.summary["metric"] == "val_accuracy" and 0 <= result.best["test_accuracy"] <= 1
    assert result.summary["baselines"]["majority_class"]["accuracy"] == pytest.approx(1 / 3, abs=0.05)
    predictor = result.predictor()
    probabilities = predictor.predict(pd.DataFrame({"text": ["the team scored a goal", "a robot writes code"]}))
    assert probabilities.shape == (2, 3) and predictor.classes == ["politics", "sports", "tech"]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)


def test_empty_rows_give_an_empty_forecast_table(airline):
    raw = pd.read_csv(builtin_path(BUILTINS["airline"]))
    empty = airline.predictor().predict(raw.iloc[:0])
    assert list(empty.columns) == ["origin", "passengers_t+1"] and len(empty) == 0


def copy_experiment(airline, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(airline.experiment_dir, copy)
    return copy


def test_a_truncated_model_file_is_one_line_naming_it(airline, tmp_path):
    copy = copy_experiment(airline, tmp_path)
    model = copy / "best_model.keras"
    model.write_bytes(model.read_bytes()[:2000])
    with pytest.raises(hr.UserError, match=r"best_model.keras cannot be loaded .*damaged") as caught:
        Predictor.load(copy)
    assert "\n" not in str(caught.value) and str(copy) in str(caught.value)


def test_a_model_with_a_lambda_layer_is_refused_in_one_line(airline, tmp_path):
    import keras

    copy = copy_experiment(airline, tmp_path)
    inputs = keras.Input((6, 1))
    outputs = keras.layers.Lambda(lambda x: x[:, -1, :] * 2.0)(inputs)
    keras.Model(inputs, outputs).save(copy / "best_model.keras")
    with pytest.raises(hr.UserError, match="cannot be loaded") as caught:
        Predictor.load(copy)
    assert "\n" not in str(caught.value)


def test_a_tampered_preprocessing_file_stops_predict_in_one_line(airline, tmp_path):
    copy = copy_experiment(airline, tmp_path)
    pre = json.loads((copy / "preprocessing.json").read_text())
    (copy / "preprocessing.json").write_text(json.dumps({**pre, "scale": "big"}))
    data = str(builtin_path(BUILTINS["airline"]))
    done = subprocess.run([sys.executable, "-m", "hindsight_ray", "predict", str(copy), "--data", data],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"error: {copy}/preprocessing.json: scale is 'big', not list; the file is damaged or was edited by hand"]
