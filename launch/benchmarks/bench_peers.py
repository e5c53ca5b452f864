"""Small jobs against the tools a practitioner would pick instead, side by side in one run.

    python launch/benchmarks/bench_peers.py [--jobs airline small] [--ways hindsight optuna kerastuner]

Each way runs as a command of its own (its wall includes Python's start and its imports), one after
another, on the same data, split and scoring:

  hindsight  ``python -m hindsight_ray sweep`` (the two-stage search on the local Ray it starts)
  optuna     Optuna's TPE sampler, in-process and sequential, one Keras model per trial
  kerastuner KerasTuner's RandomSearch, in-process, one Keras model per trial

at equal budgets: the same number of trials and epochs per trial, the same LSTM (hindsight-ray's
``build_model``), layers in {1, 2}, units in the job's list, the learning rate log-uniform in
[1e-4, 0.02] for the peers (the two-stage rule walks down from 0.02). Every way scores a trial by its
best epoch's validation RMSE in the data's units (``Prepared.scores``), and the job's score is the best
trial's. Jobs:

  airline  the 13-trial airline sweep of the seed notebook: 8 architectures then 5 learning rates, 50
           epochs each, batch 16, log + first difference, 12 lags
  small    a newcomer's CSV (the airline months written as a plain CSV, no preprocessing asked for):
           4 architectures x 5 epochs, then 3 learning rates x 5 epochs

Prints each way's wall and score, and hindsight-ray's wall over the faster peer's. Installs nothing:
KerasTuner comes with ``pip install -e '.[bench]'`` (a way whose package is missing is skipped, saying so).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JOBS = {
    "airline": {
        "settings": [
            "data.seasonal_difference=false",
            "model.batch_size=16",
            "search.stage1.epochs=50",
            "search.stage2.epochs=50",
        ],
        "units": [8, 16, 32, 64],
        "epochs": 50,
        "csv": False,
    },
    "small": {
        "settings": [
            "search.stage1.units=[8,16]",
            "search.stage1.epochs=5",
            "search.stage2.epochs=5",
            "search.stage2.max_iterations=4",
        ],
        "units": [8, 16],
        "epochs": 5,
        "csv": True,
    },
}
WAYS = {"hindsight": None, "optuna": "optuna", "kerastuner": "keras_tuner"}


def settings(job: str, folder: Path) -> list[str]:
    """The job's config as ``--set`` values (the small job reads its own CSV file)."""
    chosen = list(JOBS[job]["settings"])
    if JOBS[job]["csv"]:
        from hindsight_ray.data import BUILTINS, builtin_path

        target = folder / "passengers.csv"
        target.write_text(Path(builtin_path(BUILTINS["airline"])).read_text())
        chosen.append(f"data.source={target}")
    return chosen


def trial_counts(job: str, folder: Path) -> tuple[int, int]:
    """(stage-1 trials, stage-2 trials) of the job's two-stage sweep: the peers' budget."""
    from hindsight_ray import api
    from hindsight_ray.running.plan import make_plan

    plan = make_plan(api.resolve_config(None, settings(job, folder)))
    return plan.stage1_trials, plan.stage2_trials


# -- the peers, each in a process of its own ------------------------------------------------------------------
def prepared_job(job: str, folder: Path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from hindsight_ray import api
    from hindsight_ray.data import prepare
    from hindsight_ray.training.model import ModelSpec

    config = api.resolve_config(None, settings(job, folder))
    prepared = prepare(config.data, seed=config.seed)
    spec = ModelSpec(task=prepared.task, input_shape=prepared.x_train.shape[1:],
                     output_dim=prepared.output_dim)
    return config, prepared, spec


class BestEpoch:
    """A Keras callback: each epoch's validation RMSE in the data's units into the logs (``val_rmse``)."""

    def __new__(cls, prepared):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                outputs = self.model.predict(prepared.x_val, verbose=0)
                logs["val_rmse"] = prepared.scores("val", outputs)["rmse"]

        return Callback()


def run_optuna(job: str, folder: Path) -> dict:
    import keras
    import optuna

    from hindsight_ray.training.model import build_model

    config, prepared, spec = prepared_job(job, folder)
    trials = sum(trial_counts(job, folder))
    epochs = JOBS[job]["epochs"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        layers = trial.suggest_int("layers", 1, 2)
        units = trial.suggest_categorical("units", JOBS[job]["units"])
        learning_rate = trial.suggest_float("learning_rate", 1e-4, 0.02, log=True)
        keras.utils.clear_session()
        model = build_model(spec, layers, units, learning_rate, seed=config.seed)
        history = model.fit(prepared.x_train, prepared.y_train, batch_size=config.model.batch_size,
                            epochs=epochs, verbose=0, callbacks=[BestEpoch(prepared)])
        return float(min(history.history["val_rmse"]))

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=config.seed))
    study.optimize(objective, n_trials=trials)
    return {"score": study.best_value, "trials": len(study.trials), "best": study.best_params}


def run_kerastuner(job: str, folder: Path) -> dict:
    import keras
    import keras_tuner

    from hindsight_ray.training.model import build_model

    config, prepared, spec = prepared_job(job, folder)
    trials = sum(trial_counts(job, folder))
    epochs = JOBS[job]["epochs"]

    def build(hp: keras_tuner.HyperParameters):
        return build_model(spec, hp.Int("layers", 1, 2), hp.Choice("units", JOBS[job]["units"]),
                           hp.Float("learning_rate", 1e-4, 0.02, sampling="log"), seed=config.seed)

    tuner = keras_tuner.RandomSearch(build, objective=keras_tuner.Objective("val_rmse", "min"),
                                     max_trials=trials, seed=config.seed, directory=str(folder / "kt"),
                                     project_name=job, overwrite=True)
    tuner.search(prepared.x_train, prepared.y_train, batch_size=config.model.batch_size, epochs=epochs,
                 verbose=0, callbacks=[BestEpoch(prepared)])
    keras.utils.clear_session()
    best = tuner.oracle.get_best_trials(1)[0]
    return {"score": float(best.score), "trials": len(tuner.oracle.trials), "best": best.hyperparameters.values}


def run_hindsight(job: str, folder: Path) -> list[str]:
    return [sys.executable, "-m", "hindsight_ray", "sweep", "--storage", str(folder / "results"), "--name", job,
            *[f"--set={s}" for s in settings(job, folder)]]


# -- the side-by-side run ----------------------------------------------------------------------------------
def timed(job: str, way: str, folder: Path) -> dict:
    """One way's whole command: wall, score, trials."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = (run_hindsight(job, folder) if way == "hindsight"
               else [sys.executable, __file__, "--child", way, "--jobs", job, "--folder", str(folder)])
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{way} on {job} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    if way == "hindsight":
        summary = json.loads((folder / "results" / job / "summary.json").read_text())
        best = summary["best"]
        found = {"score": best["validation"], "trials": summary["trials_run"],
                 "best": {k: best[k] for k in ("layers", "units", "learning_rate")}}
    else:
        found = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall": wall, **found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=list(WAYS))
    parser.add_argument("--child", choices=["optuna", "kerastuner"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = run_optuna if args.child == "optuna" else run_kerastuner
        print(json.dumps(run(args.jobs[0], Path(args.folder))))
        return
    import platform

    print(f"machine   {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    for job in args.jobs:
        results = {}
        for way in args.ways:
            module = WAYS[way]
            if module and importlib.util.find_spec(module) is None:
                print(f"{job:8s}  {way:10s} skipped: {module} is not installed (pip install -e '.[bench]')")
                continue
            with tempfile.TemporaryDirectory(prefix=f"hr-peers-{job}-{way}-") as folder:
                results[way] = timed(job, way, Path(folder))
            r = results[way]
            print(f"{job:8s}  {way:10s} {r['wall']:6.1f} s  best val_rmse {r['score']:.3f}  "
                  f"({r['trials']} trials; {r['best']})", flush=True)
        peers = {w: r for w, r in results.items() if w != "hindsight"}
        if "hindsight" in results and peers:
            faster = min(peers, key=lambda w: peers[w]["wall"])
            ours = results["hindsight"]
            print(f"{job:8s}  hindsight-ray's whole command {ours['wall'] / peers[faster]['wall']:.2f}x the faster "
                  f"peer's ({faster}); val_rmse {ours['score']:.3f} against {peers[faster]['score']:.3f}")


if __name__ == "__main__":
    main()
