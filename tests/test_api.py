"""The Python API: a sweep from a notebook, on a DataFrame, with a Ray Tune callback; load and resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import hindsight_ray as hr
from hindsight_ray.config.schema import config_to_dict, load_config
from hindsight_ray.core.layout import CONFIG_FILE, FINGERPRINT_KEY
from hindsight_ray.data.sources import frame_fingerprint

TINY = ["search.stage1.layers=[1]", "search.stage1.units=[4,8]", "search.stage1.epochs=2",
        "search.stage2.max_iterations=1", "search.stage2.epochs=2", "data.lags=6", "data.target=[y]",
        "resources.max_concurrent=1"]  # one trial worker (with its TensorFlow) per sweep, not one per slot


def series(seed: int = 0, rows: int = 120) -> pd.DataFrame:
    t = np.arange(rows)
    noise = np.random.default_rng(seed).normal(0, 0.1, rows)
    return pd.DataFrame({"y": 10 + np.sin(t / 4) + noise, "day": pd.date_range("2024-01-01", periods=rows)})


def test_errors_raise_user_error_and_never_exit_the_interpreter(tmp_path):
    with pytest.raises(hr.UserError, match="search.stage1.units: the grid is empty"):
        hr.sweep(overrides=["search.stage1.units=[]"], storage=str(tmp_path))
    with pytest.raises(hr.UserError, match="data= must be a pandas DataFrame"):
        hr.sweep(data=[1, 2, 3], overrides=TINY, storage=str(tmp_path))
    with pytest.raises(hr.UserError, match="pass the DataFrame as data="):
        hr.sweep(overrides=[*TINY, "data.source=dataframe"], storage=str(tmp_path))
    with pytest.raises(hr.UserError, match="has not finished"):
        hr.load(tmp_path)
    assert not any(tmp_path.iterdir())


def test_resume_needs_the_same_dataframe(tmp_path):
    frame = series()
    config = load_config(None, [*TINY, "data.source=dataframe"])
    experiment = tmp_path / "frame-exp"
    experiment.mkdir()
    (experiment / CONFIG_FILE).write_text(json.dumps({**config_to_dict(config),
                                                      FINGERPRINT_KEY: frame_fingerprint(frame)}))
    with pytest.raises(hr.UserError, match="pass the DataFrame as data="):
        hr.resume(experiment)
    changed = frame.copy()
    changed.loc[5, "y"] += 1
    with pytest.raises(hr.UserError, match="data.source dataframe changed since the sweep started"):
        hr.resume(experiment, data=changed)


@pytest.mark.slow
def test_a_sweep_on_a_dataframe_with_a_tune_callback_and_mlflow(local_ray, tmp_path, monkeypatch):
    from ray.tune import Callback

    class Seen(Callback):
        def __init__(self) -> None:
            self.completed: list[str] = []

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.completed.append(trial.trial_id)

    seen = Seen()
    lines: list[str] = []
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this switch
    store = f"file://{tmp_path / 'mlruns'}"
    tracked = ["run.callbacks=[mlflow]", f"run.mlflow.tracking_uri={store}", "run.mlflow.experiment=hr-test"]
    result = hr.sweep(data=series(), overrides=[*TINY, "data.date_column=day", *tracked], name="frame #1",
                      storage=str(tmp_path), callbacks=[seen], echo=lines.append, report=False)
    assert result.experiment_dir == str(tmp_path / "frame #1")
    assert result.best is not None and result.best["validation"] == result.trials.val_rmse.min()
    assert len(result.trials) == 2 + 2 and sorted(seen.completed) == sorted(result.trials.trial_id)
    assert set(result.epochs.trial_id) == set(result.trials.trial_id)
    recorded = json.loads((tmp_path / "frame #1" / CONFIG_FILE).read_text())
    assert recorded["data"]["source"] == "dataframe" and recorded[FINGERPRINT_KEY] == frame_fingerprint(series())
    loaded = hr.load(result.experiment_dir)
    assert loaded.summary == result.summary and loaded.trials.equals(result.trials)
    again = hr.resume(result.experiment_dir, data=series())  # finished: handed back as it is
    assert again.summary == result.summary
    client = mlflow.tracking.MlflowClient(store)  # run.callbacks: [mlflow] logged every trial
    runs = client.search_runs([client.get_experiment_by_name("hr-test").experiment_id], "tags.`hindsight.role` = 'trial'")
    assert len(runs) == len(result.trials) == 4
    assert all("val_rmse" in run.data.metrics and "layers" in run.data.params for run in runs)


