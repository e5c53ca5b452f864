"""The Ray Tune function trainable: train one LSTM epoch by epoch, report, checkpoint, time."""

from __future__ import annotations

import json
import os
import tempfile
import time
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from hindsight_ray.config.schema import deterministic_for
from hindsight_ray.core.disk import DISK_FULL_KEY, is_disk_full
from hindsight_ray.core.objective import SCORE_EPOCH_KEY, SCORE_KEY, Objective, finite
from hindsight_ray.core.trials import FOLDED_KEY, TIMERS, epoch_row
from hindsight_ray.data.prepared import Prepared
from hindsight_ray.training import backend
from hindsight_ray.training.backend import DEFAULT as DEFAULT_BACKEND
from hindsight_ray.training.checkpoints import restore_readable, save_checkpoint
from hindsight_ray.training.model import ModelSpec, TracedModels, build_model, training_loss

# this worker's traced models, by architecture
TRACED = TracedModels()


@dataclass(frozen=True)
class DataHandle:
    """A reference to the prepared data in Ray's object store, resolved (zero-copy) inside the trial."""

    # ray.ObjectRef[Prepared]
    ref: Any


@dataclass(frozen=True)
class TrialSetup:
    """Everything a trial needs besides its hyperparameters; shared by all trials of a sweep."""

    data: DataHandle
    seed: int
    batch_size: int
    optimizer: str
    bidirectional: bool
    dropout: float
    loss: str
    objective: Objective
    # run.checkpoint_every: N epochs, or auto (every checkpoint_seconds)
    checkpoint_every: int | str
    mixed_precision: bool = False
    checkpoint_seconds: float = 30.0
    # run.report_seconds: epochs ending sooner after the last report go with the next
    report_seconds: float = 0.0
    # run.deterministic: auto (on for CPU trials, off for GPU trials), or forced
    deterministic: bool | str = "auto"
    # model.backend: Keras 3's backend (tensorflow, jax, torch)
    backend: str = DEFAULT_BACKEND
    # a user's (spec, layers, units, learning_rate, seed) -> compiled keras.Model
    builder: Any = None


def trial_seed(sweep_seed: int, config: dict[str, Any]) -> int:
    """A stable seed per (sweep seed, architecture, learning rate): same inputs, same model."""
    key = json.dumps(
        [sweep_seed, config["layers"], config["units"], float(config["learning_rate"])]
    )
    return zlib.crc32(key.encode()) % (2**31 - 1)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's shuffle, so a restart mid-trial replays the same order."""
    return zlib.crc32(f"{seed}/{epoch}".encode()) % (2**31 - 1)


def validation_loss(loss: str, actual: np.ndarray, predicted: np.ndarray) -> float:
    """The training loss on the validation split, in the units the model trains in."""
    if loss == "sparse_categorical_crossentropy":
        p = np.clip(np.asarray(predicted), 1e-7, 1.0)
        return float(-np.mean(np.log(p[np.arange(len(p)), actual.reshape(-1).astype(np.int64)])))
    if loss == "binary_crossentropy":
        p = np.clip(predicted.reshape(-1), 1e-7, 1 - 1e-7)
        y = actual.reshape(-1)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    if loss == "mae":
        return float(np.mean(np.abs(predicted - actual)))
    return float(np.mean((predicted - actual) ** 2))


def train_epoch(
    model: Any, x: np.ndarray, y: np.ndarray, batch_size: int, order: np.ndarray
) -> float:
    """One pass over the training data in ``order``; the mean training loss.

    ``train_on_batch`` in a loop costs a tenth of ``fit(epochs=1)`` per epoch on small data, and
    the order comes from our own seeded permutation, so a restarted trial replays the same batches.
    """
    total = 0.0
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        loss = model.train_on_batch(x[rows], y[rows])
        total += float(np.asarray(loss).reshape(-1)[0]) * len(rows)
    return total / max(1, len(order))


def predict(model: Any, x: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Model outputs for ``x``, in chunks, without ``predict``'s per-call set-up."""
    parts = [
        np.asarray(model.predict_on_batch(x[start : start + chunk]))
        for start in range(0, len(x), chunk)
    ]
    return np.concatenate(parts) if parts else np.empty((0,))


def _build(prepared: Prepared, setup: TrialSetup, config: dict[str, Any]) -> Any:
    """The trial's compiled model: our LSTM (this worker's traced one of the same architecture, when it has
    one, in the new model's state), or what the user's model builder returns."""
    import keras

    seed = trial_seed(setup.seed, config)
    spec, layers, units, rate = (
        _spec(prepared, setup),
        int(config["layers"]),
        int(config["units"]),
        float(config["learning_rate"]),
    )
    if setup.builder is None:
        key = (spec, layers, units, keras.config.dtype_policy().name)
        return TRACED.build(key, seed, lambda: build_model(spec, layers, units, rate, seed))
    # a reused worker starts each trial from a clean Keras state
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(seed)
    # a user's model_builder replaces our LSTM
    build = setup.builder
    model = build(spec, layers, units, rate, seed)
    if not getattr(model, "compiled", False) and getattr(model, "optimizer", None) is None:
        raise TypeError(
            f"model builder {getattr(build, '__name__', build)!r} returned an uncompiled model; "
            "compile it with an optimizer and a loss"
        )
    return model


def _spec(prepared: Prepared, setup: TrialSetup) -> ModelSpec:
    return ModelSpec(
        task=prepared.task,
        input_shape=prepared.x_train.shape[1:],
        output_dim=prepared.output_dim,
        num_words=prepared.num_words,
        optimizer=setup.optimizer,
        bidirectional=setup.bidirectional,
        dropout=setup.dropout,
        loss=setup.loss,
    )


def _validate(model: Any, prepared: Prepared, setup: TrialSetup) -> dict[str, float]:
    """Validation metrics after an epoch, in the data's units, plus the validation loss."""
    predicted = predict(model, prepared.x_val)
    scores = {f"val_{k}": v for k, v in prepared.scores("val", predicted).items()}
    loss_name = training_loss(_spec(prepared, setup))
    scores["val_loss"] = validation_loss(loss_name, prepared.y_val, predicted)
    return scores


def _start_trial(
    config: dict[str, Any], setup: TrialSetup, restored: Any, state: dict[str, Any]
) -> tuple[Prepared, Any, list[np.ndarray] | None, dict[str, Any]]:
    """The data, the model (from the checkpoint when there is one, else built), the scored epoch's weights
    and what stays the same every epoch (parameters, node, GPUs); timed into ``state``."""
    import ray

    tick = time.perf_counter()
    prepared: Prepared = ray.get(setup.data.ref)
    state["data_s"] += time.perf_counter() - tick

    tick = time.perf_counter()
    context = ray.get_runtime_context()
    gpu_ids = context.get_accelerator_ids().get("GPU", [])
    deterministic = deterministic_for(setup.deterministic, len(gpu_ids))
    cpus = context.get_assigned_resources().get("CPU", 1)
    try:
        backend.configure(
            setup.backend, cpus, len(gpu_ids), setup.mixed_precision, deterministic, trial=True
        )
    except backend.BackendError as exc:
        # a reused Ray worker of another sweep, on another backend
        raise RuntimeError(
            f"model.backend {setup.backend}: {exc}; start a new Ray for this sweep"
        ) from None
    # the scored epoch's weights when it is not the latest
    best_weights: list[np.ndarray] | None = None
    loaded = None if restored is None else restore_readable(restored, state)
    if loaded is not None:
        model, best_weights = loaded
        if best_weights is None:
            # the checkpoint's epoch was the scored one
            best_weights = model.get_weights()
    else:
        model = _build(prepared, setup, config)
    if restored is not None:
        state["retries"] += 1
    state["build_s"] += time.perf_counter() - tick
    static = {
        "params": int(model.count_params()),
        "node_ip": ray.util.get_node_ip_address(),
        "gpu_ids": ",".join(str(g) for g in gpu_ids),
        "deterministic": deterministic,
        "backend": setup.backend,
        "cudnn": bool(gpu_ids) and backend.cudnn_lstm(model),
        "node_id": context.get_node_id(),
        "pid": os.getpid(),
    }
    return prepared, model, best_weights, static


def checkpoint_due(
    epoch: int, epochs: int, every: int | str, seconds_since: float, seconds: float
) -> bool:
    """Whether ``epoch`` (1-based) ends with a checkpoint: always after the last; with ``every`` auto, once
    ``seconds`` have passed since the last checkpoint (or the trial's start); else every ``every`` epochs.
    (The scored epoch needs none of its own: its weights travel in the next checkpoint, and a restart
    that loses them retrains the same epochs to the same weights: seeded order, deterministic ops.)"""
    if epoch >= epochs:
        return True
    if every == "auto":
        return seconds_since >= seconds
    return epoch % int(every) == 0


def train_lstm(config: dict[str, Any], setup: TrialSetup) -> None:
    """Train one LSTM; report validation scores, the trial's score so far and timings every epoch;
    checkpoint as configured (the latest weights, and the scored epoch's when that is an earlier one)."""
    from ray import tune

    restored = tune.get_checkpoint()
    state: dict[str, Any] = {
        "epoch": 0,
        "retries": 0,
        "started_at": time.time(),
        "curve": [],
        **{name: 0.0 for name in TIMERS},
    }
    prepared, model, best_weights, static = _start_trial(config, setup, restored, state)
    epochs = int(config["epochs"])
    if state["epoch"] >= epochs and state.get("last_metrics"):
        # finished before a crash lost the news: say it again, train nothing
        tune.report({**state["last_metrics"], "retries": state["retries"]})
        return
    seed = trial_seed(setup.seed, config)
    objective = setup.objective
    since_checkpoint = since_report = time.monotonic()
    # epochs not yet told to Tune: they travel with the next report
    folded: list[dict[str, Any]] = []
    for epoch in range(int(state["epoch"]), epochs):
        started = time.perf_counter()
        # the epoch's own seed, not a global RNG: a restart mid-trial replays the same order.
        # (keras.utils.set_random_seed per epoch would do too, but it costs a retrace every epoch)
        order = np.random.default_rng(epoch_seed(seed, epoch)).permutation(len(prepared.x_train))
        tick = time.perf_counter()
        loss = train_epoch(model, prepared.x_train, prepared.y_train, setup.batch_size, order)
        state["train_s"] += time.perf_counter() - tick

        tick = time.perf_counter()
        scores = _validate(model, prepared, setup)
        state["eval_s"] += time.perf_counter() - tick

        state["curve"].append(finite(scores[objective.metric]))
        state["epoch"] = epoch + 1
        scored = objective.trial_score(state["curve"])
        if (
            scored.epoch == state["epoch"]
            and state["epoch"] < epochs
            and objective.rule == "best_epoch"
        ):
            # the next epochs change the model: keep this epoch's
            best_weights = model.get_weights()
        metrics = {
            "epoch": state["epoch"],
            "timesteps_total": state["epoch"],
            "loss": loss,
            # TensorBoard's x: epochs
            **scores,
            SCORE_KEY: float("nan") if scored.value is None else scored.value,
            SCORE_EPOCH_KEY: scored.epoch,
            "best_epoch": scored.best_epoch,
            "epoch_s": time.perf_counter() - started,
            **(
                {"gpu_peak_bytes": backend.gpu_memory_bytes(setup.backend)}
                if static["gpu_ids"]
                else {}
            ),
            "retries": state["retries"],
            "started_at": state["started_at"],
            **{name: state[name] for name in TIMERS},
            **static,
        }
        checkpoint = checkpoint_due(
            state["epoch"],
            epochs,
            setup.checkpoint_every,
            time.monotonic() - since_checkpoint,
            setup.checkpoint_seconds,
        )
        if not checkpoint and time.monotonic() - since_report < setup.report_seconds:
            folded.append(epoch_row(metrics))
            continue
        metrics[FOLDED_KEY] = json.dumps(folded) if folded else ""
        _report(
            model,
            state,
            metrics,
            None if scored.epoch == state["epoch"] else best_weights,
            checkpoint,
        )
        folded, since_report = [], time.monotonic()
        since_checkpoint = time.monotonic() if checkpoint else since_checkpoint


def _report(
    model: Any,
    state: dict[str, Any],
    metrics: dict[str, Any],
    best_weights: list[np.ndarray] | None,
    checkpoint: bool,
) -> None:
    """One epoch's metrics to Tune, with a checkpoint (the latest model, and the scored epoch's weights when
    those are an earlier epoch's) when ``checkpoint``."""
    from ray import tune

    if not checkpoint:
        metrics["finished_at"] = time.time()
        tune.report(metrics)
        return
    tick = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hindsight-ckpt-") as folder:
        metrics["finished_at"] = time.time()
        state["last_metrics"] = metrics
        save_checkpoint(model, state, folder, best_weights)
        try:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            _wait_for_the_driver_to_stop(metrics, exc)
    state["checkpoint_s"] += time.perf_counter() - tick


def _wait_for_the_driver_to_stop(metrics: dict[str, Any], exc: OSError) -> None:
    """The storage is full: a retry would fail the same way and spend the trial's retries, so the trial says so
    and waits while the driver stops the sweep (:class:`~hindsight_ray.running.console.DiskWatch`), to be resumed from
    its last checkpoint once there is space. Only if no driver stops it does the error end the trial."""
    from ray import tune

    detail = (str(exc).strip().splitlines() or ["No space left on device"])[-1][:300]
    tune.report({**metrics, DISK_FULL_KEY: detail})
    time.sleep(300)
    raise exc
