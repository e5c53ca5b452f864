"""MLflow tracking as its users expect: a parent run per sweep, a nested run per trial with every epoch at its
step, the scores, the best trial and the exported model on the parent; nothing printed per trial; a slow
MLflow never holds Tune's loop (pure checks against a fake client, then a real sweep on MLflow's file store)."""

from __future__ import annotations

import json
import threading
import time

import pytest

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("ray.tune")

from hindsight_ray.core.trials import FOLDED_KEY  # noqa: E402
from hindsight_ray.reporting.mlflow_tracking import (  # noqa: E402
    MlflowTracker,
    epoch_metrics,
    flat_items,
    run_name,
)

pytestmark = pytest.mark.slow  # Ray Tune's Callback is the tracker's base class: imports Ray (but starts none)


def test_every_folded_epoch_is_a_step_of_its_own():
    folded = json.dumps([{"epoch": 1, "loss": 3.0, "val_rmse": 9.0}, {"epoch": 2, "loss": 2.0, "val_rmse": 8.0}])
    result = {"epoch": 3, "loss": 1.0, "val_rmse": 7.0, "epoch_s": 0.01, FOLDED_KEY: folded, "params": 55,
              "val_nan": float("nan")}
    assert [(e, m["val_rmse"]) for e, m in epoch_metrics(result)] == [(1, 9.0), (2, 8.0), (3, 7.0)]
    assert "val_nan" not in epoch_metrics(result)[-1][1] and "params" not in epoch_metrics(result)[-1][1]


def test_names_and_params_a_person_can_read():
    assert run_name({"layers": 2, "units": 64, "learning_rate": 0.01}, 7) == "2x64 lr=0.01 #7"
    assert flat_items({"search": {"stage1": {"units": [8, 16]}}, "seed": 0}) == [("search.stage1.units", [8, 16]),
                                                                                ("seed", 0)]


class Trial:
    def __init__(self, trial_id: str, stage: int = 1) -> None:
        self.trial_id, self.config = trial_id, {"stage": stage, "layers": 1, "units": 4, "learning_rate": 0.01}


def test_a_slow_mlflow_never_holds_tunes_loop(tmp_path, monkeypatch):
    """Every call into MLflow takes 0.3 s here: none is made on Tune's loop (the callbacks only queue), and the
    end of the experiment waits until everything is sent."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow import MlflowClient

    slow, callers = threading.Event(), []
    for name in ("create_run", "log_batch", "set_terminated"):
        real = getattr(MlflowClient, name)

        def delayed(self, *args, _real=real, **kwargs):
            if slow.is_set():
                callers.append(threading.current_thread())
                time.sleep(0.3)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(MlflowClient, name, delayed)
    tracker = MlflowTracker(str(tmp_path / "exp"), f"file://{tmp_path / 'mlruns'}", "slow", "sweep", {"seed": 0}, {})
    (tmp_path / "exp").mkdir()
    slow.set()
    tracker.setup()
    for trial_id in ("a", "b"):
        tracker.on_trial_start(0, [], Trial(trial_id))
        for epoch in (1, 2, 3):
            tracker.on_trial_result(0, [], Trial(trial_id), {"epoch": epoch, "val_rmse": 10.0 - epoch})
        tracker.on_trial_complete(0, [], Trial(trial_id))
    assert threading.main_thread() not in callers  # the slow calls queued, none made on Tune's loop...
    tracker.on_experiment_end([])  # ...and all made before Tune's fit returns
    assert len(callers) >= 13 and threading.main_thread() not in callers
    assert not tracker.errors
    client = MlflowClient(f"file://{tmp_path / 'mlruns'}")
    for trial_id, run_id in tracker.state["runs"].items():
        assert [m.step for m in client.get_metric_history(run_id, "val_rmse")] == [1, 2, 3], trial_id
        assert client.get_run(run_id).info.status == "FINISHED"


def test_a_sweep_logs_a_parent_run_with_nested_trials_and_the_model(local_ray, tmp_path, monkeypatch, capsys):
    import hindsight_ray as hr

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = f"file://{tmp_path / 'mlruns'}"
    lines: list[str] = []
    result = hr.sweep(overrides=[
        "search.stage1.layers=[1]", "search.stage1.units=[4,8]", "search.stage1.epochs=3",
        "search.stage2.max_iterations=1", "search.stage2.epochs=3", "data.lags=6",  # epochs fold (report_seconds)
        "resources.max_concurrent=1",  # one trial worker per sweep, not one per slot
        "run.callbacks=[mlflow]", f"run.mlflow.tracking_uri={store}", "run.mlflow.experiment=hr-mlflow",
    ], storage=str(tmp_path), name="tracked", echo=lines.append, report=False)
    client = mlflow.tracking.MlflowClient(store)
    experiment = client.get_experiment_by_name("hr-mlflow").experiment_id
    runs = client.search_runs([experiment])
    parents = [r for r in runs if r.data.tags.get("hindsight.role") == "sweep"]
    trials = [r for r in runs if r.data.tags.get("hindsight.role") == "trial"]
    assert len(parents) == 1 and len(trials) == len(result.trials) == 4
    parent = parents[0]
    assert parent.info.run_name == "tracked" and parent.info.status == "FINISHED"
    assert parent.data.params["search.stage1.units"] == "[4, 8]"
    assert parent.data.metrics["best_test_rmse"] == pytest.approx(result.best["test_rmse"])
    assert "baseline_persistence_rmse" in parent.data.metrics
    assert parent.data.tags["hindsight.best_trial"] == result.best["trial_id"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "model")}
    assert {"model/best_model.keras", "model/preprocessing.json", "model/summary.json"} <= artifacts
    for run in trials:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_rmse")]
        assert steps == [1, 2, 3], run.info.run_name  # every epoch, at its own step, once
        assert {"hindsight.used", "hindsight.speculative", "hindsight.stage"} <= set(run.data.tags)
        assert "train_s" in run.data.metrics and run.info.status == "FINISHED"
    best = [r for r in trials if r.data.tags.get("hindsight.best") == "true"]
    assert [r.data.tags["hindsight.trial_id"] for r in best] == [result.best["trial_id"]]
    assert {r.info.run_name.split(" #")[0] for r in trials} >= {"1x4 lr=0.001", "1x8 lr=0.001"}
    printed = capsys.readouterr().out + "\n".join(lines)
    assert "View run" not in printed and "mlflow.org" not in printed
    assert sum(line.startswith("mlflow ") for line in lines) == 1, lines


def test_callbacks_pickled_with_the_folder_as_a_string_resume_on_the_same_folder(tmp_path):
    """A sweep started by the version that kept the experiment as a string, resumed by this one: Tune unpickles
    its callbacks from the old state, and they read and write the same folder."""
    import pickle

    from hindsight_ray.core.experiment import ExperimentStore
    from hindsight_ray.running.console import TrialClock

    folder = str(tmp_path / "exp")
    tracker = MlflowTracker(folder, None, "e", "sweep", {}, {})
    old_tracker = {k: v for k, v in tracker.__getstate__().items() if k != "store"} | {"experiment_dir": folder}
    again = MlflowTracker.__new__(MlflowTracker)
    again.__setstate__(old_tracker)
    assert again.store == ExperimentStore(folder) and again.errors == []
    clock = TrialClock.__new__(TrialClock)
    clock.__setstate__({"experiment_dir": folder, "stamps": None})
    assert clock.experiment == ExperimentStore(folder)
    # and this version's own pickles round-trip
    assert pickle.loads(pickle.dumps(TrialClock(ExperimentStore(folder)))).experiment.uri == folder
    assert pickle.loads(pickle.dumps(tracker)).store.uri == folder
