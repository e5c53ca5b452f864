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

pytestmark = pytest.mark.slow

TINY = ["search.stage1.layers=[1]", "search.stage1.units=[4]", "search.stage1.epochs=3",
        "search.stage2.max_iterations=1", "search.stage2.epochs=3"]


@pytest.fixture(scope="module")
def airline(local_ray, tmp_path_factory):
    storage = tmp_path_factory.mktemp("predict")
    return hr.sweep(overrides=[*TINY, "data.lags=6"], storage=str(storage), name="air", echo=lambda line: None,
                    report=False)


def test_the_predictor_reproduces_the_test_predictions_from_raw_passenger_counts(airline):
    raw = pd.read_csv(builtin_path(BUILTINS["airline"]))
    forecasts = airline.predictor().predict(raw)
    assert list(forecasts.columns) == ["origin", "passengers_t+1"]
    # one row per window the raw rows form: 144 rows, one lost to differencing, 6 lags
    assert len(forecasts) == 144 - 1 - 6 + 1 and forecasts.origin.iloc[-1] == "1960-12-01"  # past the end
    saved = pd.read_parquet(f"{airline.experiment_dir}/test_predictions.parquet")
    joined = saved.merge(forecasts, on="origin")
    assert len(joined) == len(saved) == airline.summary["data"]["windows"][2]
    np.testing.assert_allclose(joined["passengers_t+1"], joined.predicted, rtol=1e-6)
    assert 200 < forecasts["passengers_t+1"].iloc[-1] < 800  # thousands of passengers, not scaled units
    preprocessing = json.loads(open(f"{airline.experiment_dir}/preprocessing.json").read())
    assert preprocessing["log"] and preprocessing["difference"] and preprocessing["fingerprint"]["sha256"]


def test_predict_command_writes_forecasts_in_the_datas_units(airline, tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    data = str(builtin_path(BUILTINS["airline"]))
    out = tmp_path / "forecast.parquet"
    done = subprocess.run([sys.executable, "-m", "hindsight_ray", "predict", airline.experiment_dir, "--data", data,
                           "--out", str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_parquet(out)
    assert len(table) == 138 and table["passengers_t+1"].between(50, 1500).all()
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
