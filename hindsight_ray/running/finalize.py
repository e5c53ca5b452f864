"""A finished search -> tables, the best model scored once on test and exported with its preprocessing,
and ``summary.json`` (written last: its presence means "finished")."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from hindsight_ray.config.schema import SweepConfig
from hindsight_ray.core import layout
from hindsight_ray.core.errors import UserError
from hindsight_ray.core.experiment import ExperimentStore
from hindsight_ray.core.layout import CONFIG_FILE, FINGERPRINT_KEY, SEARCHER_PREFIX, STATE_PREFIXES
from hindsight_ray.core.objective import Objective, is_better
from hindsight_ray.core.trials import TrialState
from hindsight_ray.data import Prepared
from hindsight_ray.reporting import tables
from hindsight_ray.search.policy import RecordStatus, TwoStagePolicy
from hindsight_ray.training import backend
from hindsight_ray.training.backend import DEFAULT as DEFAULT_BACKEND
from hindsight_ray.training.checkpoints import checkpoint_left_on_disk
from hindsight_ray.training.warm import join_warming, warm_backend


def load_policy(store: ExperimentStore) -> TwoStagePolicy:
    """The two-stage decisions as last saved with the experiment (our JSON under Ray's ``.pkl`` name)."""
    # named by session start time: the last is the newest
    files = store.names(SEARCHER_PREFIX)
    if not files:
        raise UserError(f"{store.location}: no searcher state found")
    return TwoStagePolicy.from_state(store.read_json(files[-1])["policy"])


# the snapshots that are JSON: Ray's experiment state, and our searcher's state (under Ray's .pkl name);
# Ray's search_gen_state-*.json is a pickle despite its name and is left to Ray


def set_aside_damaged_state(store: ExperimentStore) -> list[str]:
    """The newest snapshot of each kind that is not readable JSON (a disk that filled up while it was
    written) is renamed ``damaged-<name>``, so that a resume goes on from the previous one. Returns the
    names set aside. (A local or NFS folder; object stores write whole objects or none.)"""
    if not store.local:
        return []
    damaged = []
    for prefix in STATE_PREFIXES:
        files = store.names(prefix)
        if not files:
            continue
        try:
            store.read_json(files[-1])
        except ValueError:
            # JSONDecodeError, or bytes that are not UTF-8
            damaged.append(files[-1])
    for name in damaged:
        os.replace(store.path(name), store.path(f"damaged-{name}"))
    return damaged


def load_outcomes(store: ExperimentStore) -> list[tables.TrialOutcome]:
    """Every trial of an experiment, as Ray recorded it (read through the experiment's own filesystem)."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(store.root, storage_filesystem=store.fs)
    frames = analysis.trial_dataframes
    outcomes = []
    for trial in analysis.trials:
        frame = frames.get(trial.trial_id)
        records = [] if frame is None or frame.empty else frame.to_dict("records")
        checkpoint = trial.checkpoint
        path = checkpoint.path if checkpoint is not None else None
        if path is None and trial.status == TrialState.TERMINATED and records:
            # a trial Ray recorded
            assert trial.storage is not None and trial.path is not None
            path = checkpoint_left_on_disk(
                trial.storage.storage_filesystem, trial.path, records[-1].get("epoch")
            )
        outcomes.append(
            tables.TrialOutcome(
                trial_id=trial.trial_id,
                config=dict(trial.config),
                status=trial.status,
                results=records,
                checkpoint_path=path,
                num_failures=int(trial.num_failures),
            )
        )
    return outcomes


def evaluate_on_test(
    prepared: Prepared,
    checkpoint_path: str,
    store: ExperimentStore,
    worker: bool = True,
    beside: dict[str, np.ndarray] | None = None,
    members: Sequence[str] = (),
    metric: str = "",
    mode: str = "min",
    backend_name: str = DEFAULT_BACKEND,
) -> dict[str, Any]:
    """Load a trial's final model, score it once on the test split, export it (in this process for a local
    Ray, else as a Ray task: ``worker``, whose TensorFlow is sized to its one CPU). ``beside``: the
    baselines' test forecasts, written next to the model's in ``test_predictions.parquet``.

    ``members``: the checkpoints of the next-best trials (``search.ensemble``). The average of the best
    ``k`` models' outputs is scored on validation for every ``k`` up to ``1 + len(members)``; the ``k``
    with the best ``metric`` (ties to the smaller) is the chosen model, tested once and exported as one
    Keras model; ``ensemble`` in the result says which."""
    from ray.tune import Checkpoint

    from hindsight_ray.training.checkpoints import load_scored_model
    from hindsight_ray.training.trainable import predict

    if worker:
        backend.configure(backend_name, 1)
    models = []
    for path in [checkpoint_path, *members]:
        try:
            with Checkpoint(path, filesystem=store.fs).as_directory() as folder:
                # the scored (best) epoch's weights, not merely the last
                models.append(load_scored_model(folder))
        except Exception as exc:
            # a corrupt final checkpoint: one line for the driver, never a traceback
            detail = (str(exc).strip().splitlines() or [""])[0][:200]
            whose = "the best trial's" if path == checkpoint_path else "an ensemble member's"
            return {
                "error": f"{whose} checkpoint {path} cannot be read ({type(exc).__name__}: "
                f"{detail}); its model cannot be exported"
            }
    ensemble = None
    if len(models) > 1:
        k, by_k = choose_ensemble(
            prepared, [predict(m, prepared.x_val) for m in models], metric, mode
        )
        models = models[:k]
        ensemble = {"k": k, "validation_by_k": by_k}
    model = models[0] if len(models) == 1 else averaged_model(models, prepared.x_test.shape[1:])
    predicted = predict(model, prepared.x_test)
    scores = {f"test_{k}": v for k, v in prepared.scores("test", predicted).items()}
    if prepared.task == "regression":
        # first target, first step: enough to plot against the truth
        frame = pd.DataFrame(
            {
                "origin": prepared.origins["test"],
                "actual": prepared.actual["test"][:, 0],
                "predicted": prepared.in_data_units("test", predicted)[:, 0],
                **{name: values[:, 0] for name, values in (beside or {}).items()},
            }
        )
        store.write_bytes(layout.PREDICTIONS_FILE, tables.parquet_bytes(frame))
    else:
        # each test text's class and the predicted one, named as the data names them
        from hindsight_ray.core.metrics import predicted_classes

        names = list(prepared.preprocessing.get("classes") or [])
        actual, guess = (
            np.asarray(prepared.y_test).reshape(-1).astype(int),
            predicted_classes(predicted),
        )
        label = (
            (lambda ids: [names[i] for i in ids]) if names else (lambda ids: [str(i) for i in ids])
        )
        frame = pd.DataFrame({"actual": label(actual), "predicted": label(guess)})
        store.write_bytes(layout.PREDICTIONS_FILE, tables.parquet_bytes(frame))
    with tempfile.TemporaryDirectory() as folder:
        exported = os.path.join(folder, layout.BEST_MODEL_FILE)
        model.save(exported)
        store.upload(layout.BEST_MODEL_FILE, exported)
    return {**scores, "ensemble": ensemble} if ensemble else scores


def ensemble_members(config: SweepConfig, trials: pd.DataFrame, best_id: str) -> list[str]:
    """The checkpoints of the ``search.ensemble - 1`` best trials after the chosen one (that ran all their
    epochs and have a score), best first."""
    if config.search.ensemble <= 1:
        return []
    scored = trials[
        (trials.trial_id != best_id)
        & trials[config.metric].notna()
        & trials.checkpoint_path.notna()
    ]
    ranked = scored.sort_values(config.metric, ascending=config.mode == "min", kind="stable")
    return [str(path) for path in ranked.checkpoint_path.head(config.search.ensemble - 1)]


def choose_ensemble(
    prepared: Prepared, outputs: list[np.ndarray], metric: str, mode: str
) -> tuple[int, list[float]]:
    """The number ``k`` of best models whose averaged validation outputs score best on ``metric`` (ties
    to the smaller ``k``), and the score of every ``k``."""
    key = metric.removeprefix("val_")
    scores = [
        float(prepared.scores("val", np.mean(outputs[:k], axis=0))[key])
        for k in range(1, len(outputs) + 1)
    ]
    best = 0
    for k, score in enumerate(scores):
        if is_better(score, scores[best], mode):
            best = k
    return best + 1, scores


def averaged_model(models: list[Any], input_shape: tuple[int, ...]) -> Any:
    """One Keras model whose output is the mean of ``models``' outputs (what the predictor then loads)."""
    import keras

    inputs = keras.Input(input_shape)
    members = [
        keras.Model(m.inputs[0], m.outputs[0], name=f"member_{i}")(inputs)
        for i, m in enumerate(models)
    ]
    return keras.Model(inputs, keras.layers.Average()(members), name="ensemble")


def score_trials(
    config: SweepConfig,
    outcomes: list[tables.TrialOutcome],
    policy: TwoStagePolicy | None,
    queued_at: dict[str, float],
) -> tuple[pd.DataFrame, str | None]:
    """Every trial scored (``trials.parquet`` before the test scores) and the id of the best one.

    Trials stopped before their last epoch (early stopping, a budget, unused speculation) are recorded
    as STOPPED with no score. ``policy`` is the two-stage search's decisions; other strategies pass None
    and their best is the best trial that ran all its epochs.
    """
    objective = config.objective
    trials = tables.trials_table(
        outcomes, objective=objective, strategy=config.search.strategy, queued_at=queued_at
    )
    records = policy.trials if policy is not None else {}
    used = policy.used_trial_ids() if policy is not None else set(trials.trial_id)
    trials["speculative"] = [
        bool(records[t].speculative) if t in records else False for t in trials.trial_id
    ]
    trials["used"] = [t in used for t in trials.trial_id]
    stopped = (
        (trials["status"] == TrialState.TERMINATED)
        & (trials["epochs_run"].fillna(0) < trials["epochs"])
    ).tolist()
    stopped = [
        a or (t in records and records[t].status == RecordStatus.STOPPED)
        for a, t in zip(stopped, trials.trial_id, strict=True)
    ]
    trials.loc[stopped, "status"] = TrialState.STOPPED.value
    trials.loc[stopped, config.metric] = None
    if policy is not None:
        return trials, getattr(policy.best(), "trial_id", None)
    index = objective.best_index(trials[config.metric].astype(float).tolist())
    return trials, None if index is None else str(trials.trial_id.iloc[index])


def summarize(
    config: SweepConfig,
    experiment: str,
    trials: pd.DataFrame,
    policy: TwoStagePolicy | None,
    prepared_info: dict[str, Any],
    baselines: dict[str, Any],
) -> tables.Summary:
    """``summary.json`` without its best trial: what ran, how long, how busy, and the two stages' decisions."""
    began = (
        trials["queued_at"].min()
        if trials["queued_at"].notna().any()
        else trials["started_at"].min()
    )
    wall_s = float(trials["finished_at"].max() - began)
    summary: tables.Summary = {
        "experiment": experiment.rsplit("/", 1)[-1],
        "experiment_dir": experiment,
        "strategy": config.search.strategy,
        "metric": config.metric,
        "mode": config.mode,
        "score": config.objective.rule,
        "seed": config.seed,
        "budget": config.search.budget,
        "data": {"source": config.data.source, **prepared_info},
        "stage1": None,
        "stage2": None,
        "best": None,
        "baselines": baselines,
        "wall_s": wall_s,
        "trial_s": float(trials["total_s"].fillna(0).sum()),
        "trial_epochs": int(trials["epochs_run"].fillna(0).sum()),
        "trials_run": len(trials),
        "stopped_trials": int((trials["status"] == TrialState.STOPPED).sum()),
        "retries": int(trials["retries"].sum()),
        "utilization": tables.utilization(trials, wall_s),
        "finished_at": time.time(),
    }
    if policy is not None:
        winner = policy.winner
        summary["stage1"] = {
            "trials": len(policy.stage1_trials()),
            "failed": sum(t.status == RecordStatus.ERROR for t in policy.stage1_trials()),
            "winner": None
            if winner is None
            else {
                "trial_id": winner.trial_id,
                "layers": winner.layers,
                "units": winner.units,
                "validation": winner.score,
                "params": winner.params,
            },
        }
        summary["stage2"] = {
            "iterations": policy.iterations,
            "learning_rate_path": policy.learning_rate_path(),
            "speculative": bool(policy.settings["speculative"]),
            "speculative_trials": int(trials["speculative"].sum()),
        }
    return summary


def best_entry(
    config: SweepConfig, trials: pd.DataFrame, best_id: str, test: dict[str, float], model: str
) -> tables.Best:
    """``summary.json``'s best: the chosen trial's settings, scored epoch, validation and test scores."""
    row = trials.loc[trials["trial_id"] == best_id].iloc[0]
    entry: dict[str, Any] = {
        "trial_id": best_id,
        "stage": None if pd.isna(row.stage) else int(row.stage),
        "layers": int(row.layers),
        "units": int(row.units),
        "learning_rate": float(row.learning_rate),
        "epochs": int(row.epochs),
        "epoch": int(row.score_epoch),
        "validation": float(row[config.metric]),
        "last_validation": float(row[config.objective.last_key]),
        **test,
        "model": model,
    }
    return cast(tables.Best, entry)


def finalize(
    config: SweepConfig,
    store: ExperimentStore,
    prepared: Prepared,
    data_ref: Any,
    policy: TwoStagePolicy | None,
) -> tables.Summary:
    """Tables, the best model on test, and the summary, written into the experiment dir (each atomically).

    ``policy`` is the two-stage search's decisions; other strategies pass None. ``data_ref``: the data in Ray's
    object store, for a test evaluation on the cluster; None evaluates in this process.
    """
    import ray

    from hindsight_ray.running.console import read_queue_times

    experiment = store.uri
    outcomes = load_outcomes(store)
    trials, best_id = score_trials(config, outcomes, policy, read_queue_times(store))
    baselines, forecasts = all_baselines(prepared)
    summary = summarize(config, experiment, trials, policy, prepared.info, baselines)
    if best_id is not None:
        row = trials.loc[trials["trial_id"] == best_id].iloc[0]
        members = ensemble_members(config, trials, best_id)
        name = config.model.backend
        choice: dict[str, Any] = {
            "members": members,
            "metric": config.metric,
            "mode": config.mode,
            "backend_name": name,
        }
        # a background import of Keras ends before this process's backend is asked
        join_warming()
        # this process can run Keras on the sweep's backend
        here = backend.running() in (None, name)
        if data_ref is None and here:
            # a local Ray: here, where the backend was imported while the trials ran
            # (if no trial started in this process, a resume say: now, with the trials' settings)
            warm_backend(name)
            join_warming()
            test = evaluate_on_test(
                prepared, row.checkpoint_path, store, worker=False, beside=forecasts, **choice
            )
        else:
            # a cluster, or Keras here already on another backend (a second sweep in one Python session)
            options: dict[str, Any] = {
                "num_cpus": 1,
                "runtime_env": {"env_vars": backend.worker_env(name)},
            }
            data = ray.put(prepared) if data_ref is None else data_ref
            evaluate = ray.remote(**options)(evaluate_on_test)
            test = ray.get(
                evaluate.remote(data, row.checkpoint_path, store, beside=forecasts, **choice)
            )
        if "error" in test:
            raise UserError(test["error"])
        ensemble = test.pop("ensemble", None)
        for key, value in test.items():
            trials.loc[trials["trial_id"] == best_id, key] = value
        best = best_entry(config, trials, best_id, test, store.path(layout.BEST_MODEL_FILE))
        summary["best"] = best
        if ensemble:
            k = ensemble["k"]
            best["ensemble"] = {  # type: ignore[typeddict-unknown-key]
                "k": k,
                "trial_ids": [
                    best_id,
                    *trials.set_index("checkpoint_path").loc[members[: k - 1], "trial_id"],
                ],
                "validation": ensemble["validation_by_k"][k - 1],
                "validation_by_k": ensemble["validation_by_k"],
            }
    recorded = store.read_json(CONFIG_FILE).get(FINGERPRINT_KEY)
    preprocessing = {
        **prepared.preprocessing,
        "fingerprint": recorded,
        "backend": config.model.backend,
    }
    store.write_json(layout.PREPROCESSING_FILE, preprocessing)
    store.write_bytes(layout.TRIALS_FILE, tables.parquet_bytes(trials))
    store.write_bytes(layout.EPOCHS_FILE, tables.parquet_bytes(tables.epochs_table(outcomes)))
    # last: its presence means "finished"
    store.write_json(layout.SUMMARY_FILE, dict(summary))
    return summary


def all_baselines(prepared: Prepared) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The test scores of every baseline (the naive ones, and for a series the classical models fitted on
    the training rows) and the series baselines' test forecasts, by name."""
    baselines: dict[str, Any] = dict(prepared.baselines)
    history = prepared.history
    if history is None:
        return baselines, {}
    from hindsight_ray.data.classical import classical_baselines

    classical, forecasts = classical_baselines(history, prepared.actual["test"])
    return {**baselines, **classical}, {**history.naive, **forecasts}


def describe_best(summary: tables.Summary, objective: Objective) -> str:
    best: dict[str, Any] = dict(summary.get("best") or {})
    if not best:
        return "none (every trial failed)"
    test = best.get(objective.test_key)
    ensemble = best.get("ensemble") or {}
    if ensemble.get("k", 1) > 1:
        return (
            f"the mean of the best {ensemble['k']} trials' models (led by layers={best['layers']} "
            f"units={best['units']} lr={best['learning_rate']:g}) {objective.metric}={ensemble['validation']:.4g} "
            f"test={test:.4g}"
        )
    return (
        f"layers={best['layers']} units={best['units']} lr={best['learning_rate']:g} "
        f"{objective.metric}={best['validation']:.4g} (epoch {best['epoch']}) test={test:.4g}"
    )
