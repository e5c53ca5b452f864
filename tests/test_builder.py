"""A user's model builder replaces the LSTM; trainable, checkpoints, scoring, export and predictor are unchanged."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import hindsight_ray as hr
from hindsight_ray.data import BUILTINS, builtin_path

TINY = ["search.stage1.layers=[1,2]", "search.stage1.units=[4]", "search.stage1.epochs=2",
        "search.stage2.max_iterations=1", "search.stage2.epochs=2", "data.lags=6",
        "resources.max_concurrent=1"]  # one trial worker (with its TensorFlow) per sweep, not one per slot

GRU_MODULE = '''
import keras


def gru(spec, layers, units, learning_rate, seed):
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input(shape=spec.input_shape)
    for depth in range(layers):
        x = keras.layers.GRU(units, return_sequences=depth < layers - 1)(x)
    model = keras.Model(inputs, keras.layers.Dense(spec.output_dim)(x))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=spec.loss)
    return model
'''


def test_a_bad_builder_path_is_a_one_line_error_before_ray(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(hr.UserError, match="must look like package.module:function"):
        hr.sweep(overrides=["model.builder=gru"], storage=str(tmp_path))
    with pytest.raises(hr.UserError, match="cannot import no_such_module"):
        hr.sweep(overrides=["model.builder=no_such_module:gru"], storage=str(tmp_path))
    (tmp_path / "builders.py").write_text("x = 1\n")
    with pytest.raises(hr.UserError, match="builders has no function gru"):
        hr.sweep(overrides=["model.builder=builders:gru"], storage=str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) in (["builders.py"], ["__pycache__", "builders.py"])


@pytest.mark.slow
def test_a_gru_builder_from_the_config_runs_end_to_end(local_ray, tmp_path, monkeypatch):
    import keras

    (tmp_path / "my_models.py").write_text(GRU_MODULE)
    monkeypatch.chdir(tmp_path)  # "my_models" is importable from the working directory only
    result = hr.sweep(overrides=[*TINY, "model.builder=my_models:gru"], storage=str(tmp_path / "out"), name="gru",
                      echo=lambda line: None, report=False)
    trials = result.trials
    assert len(trials) == 2 + 2 and (trials.status == "TERMINATED").all()
    # one GRU layer of 4 units on 1 feature: 3 * (4 * (1 + 4) + 2 * 4) = 84 weights, plus the Dense head's 5
    assert trials[(trials.stage == 1) & (trials.layers == 1)].params.iloc[0] == 84 + 5
    exported = keras.models.load_model(f"{result.experiment_dir}/best_model.keras")
    assert any(isinstance(layer, keras.layers.GRU) for layer in exported.layers)
    assert result.best["validation"] == trials.val_rmse.min()
    forecasts = result.predictor().predict(pd.read_csv(builtin_path(BUILTINS["airline"])))
    assert forecasts["passengers_t+1"].between(50, 1500).all()
    assert json.loads((tmp_path / "out" / "gru" / "config.json").read_text())["model"]["builder"] == "my_models:gru"


@pytest.mark.slow
def test_a_python_builder_function_and_its_resume(local_ray, tmp_path):
    import keras

    def dense(spec, layers, units, learning_rate, seed):  # defined here: shipped to the workers by value
        keras.utils.set_random_seed(seed)
        inputs = keras.Input(shape=spec.input_shape)
        x = keras.layers.Flatten()(inputs)
        for _ in range(layers):
            x = keras.layers.Dense(units, activation="relu")(x)
        model = keras.Model(inputs, keras.layers.Dense(spec.output_dim)(x))
        model.compile(optimizer=keras.optimizers.RMSprop(learning_rate), loss="mse")
        return model

    result = hr.sweep(overrides=TINY, model_builder=dense, storage=str(tmp_path), name="dense",
                      echo=lambda line: None, report=False)
    assert result.trials.params.min() == 6 * 4 + 4 + 5  # Flatten(6) -> Dense(4) -> Dense(1)
    recorded = json.loads((tmp_path / "dense" / "config.json").read_text())
    assert recorded["model_builder"].endswith("test_a_python_builder_function_and_its_resume.<locals>.dense")
    (tmp_path / "dense" / "summary.json").unlink()  # as if it had been interrupted before finishing
    with pytest.raises(hr.UserError, match="built by the Python function"):
        hr.resume(tmp_path / "dense")
