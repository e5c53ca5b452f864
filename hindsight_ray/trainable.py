"""The Ray Tune function trainable: train one LSTM epoch by epoch, report, checkpoint, time."""

from __future__ import annotations

import json
import os
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hindsight_ray.data.prepared import Prepared
from hindsight_ray.model import ModelSpec, build_model

MODEL_FILE = "model.keras"
STATE_FILE = "state.json"
TIMERS = ("data_s", "build_s", "train_s", "eval_s", "checkpoint_s")


@dataclass(frozen=True)
class DataHandle:
    """A reference to the prepared data in Ray's object store, resolved (zero-copy) inside the trial."""

    ref: Any  # ray.ObjectRef[Prepared]


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
    metric: str
    mode: str
    checkpoint_every: int
    mixed_precision: bool = False


def trial_seed(sweep_seed: int, config: dict[str, Any]) -> int:
    """A stable seed per (sweep seed, architecture, learning rate): same inputs, same model."""
    key = json.dumps([sweep_seed, config["layers"], config["units"], float(config["learning_rate"])])
    return zlib.crc32(key.encode()) % (2**31 - 1)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's shuffle, so a restart mid-trial replays the same order."""
    return zlib.crc32(f"{seed}/{epoch}".encode()) % (2**31 - 1)


def configure_tensorflow(cpus: float, mixed_precision: bool = False) -> None:
    """Thread pools sized to the trial's CPUs, GPU memory growth on, deterministic ops.

    Ray sets ``CUDA_VISIBLE_DEVICES`` to the trial's own GPU(s), so TensorFlow sees only those;
    memory growth lets trials packed on one GPU (fractional ``gpus_per_trial``) share it.
    """
    import tensorflow as tf

    threads = max(1, int(cpus))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # TensorFlow already initialised in this process; the pools stay as they were
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass  # already initialised: growth was set by the first trial in this process
    tf.config.experimental.enable_op_determinism()
    if mixed_precision and tf.config.list_physical_devices("GPU"):
        import keras

        keras.mixed_precision.set_global_policy("mixed_float16")


def validation_loss(loss: str, actual: np.ndarray, predicted: np.ndarray) -> float:
    """The training loss on the validation split, in the units the model trains in."""
    if loss == "binary_crossentropy":
        p = np.clip(predicted.reshape(-1), 1e-7, 1 - 1e-7)
        y = actual.reshape(-1)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    if loss == "mae":
        return float(np.mean(np.abs(predicted - actual)))
    return float(np.mean((predicted - actual) ** 2))


def train_epoch(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int, order: np.ndarray) -> float:
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
    parts = [np.asarray(model.predict_on_batch(x[start : start + chunk])) for start in range(0, len(x), chunk)]
    return np.concatenate(parts) if parts else np.empty((0,))


def _better(score: float, best: float | None, mode: str) -> bool:
    return best is None or (score < best if mode == "min" else score > best)


def _save_checkpoint(model: Any, state: dict[str, Any], folder: str) -> None:
    model.save(os.path.join(folder, MODEL_FILE))
    with open(os.path.join(folder, STATE_FILE), "w", encoding="utf-8") as handle:
        json.dump(state, handle)


def train_lstm(config: dict[str, Any], setup: TrialSetup) -> None:
    """Train one LSTM; report validation scores and timings every epoch; checkpoint as configured."""
    import ray
    from ray import tune

    wall = time.time()
    restored = tune.get_checkpoint()
    state: dict[str, Any] = {"epoch": 0, "retries": 0, "started_at": wall, "best": None, "best_epoch": None,
                             **{name: 0.0 for name in TIMERS}}
    if restored is not None:
        with restored.as_directory() as folder:
            state.update(json.loads(Path(folder, STATE_FILE).read_text(encoding="utf-8")))
        state["retries"] += 1

    tick = time.perf_counter()
    prepared: Prepared = ray.get(setup.data.ref)
    state["data_s"] += time.perf_counter() - tick

    tick = time.perf_counter()
    context = ray.get_runtime_context()
    cpus = context.get_assigned_resources().get("CPU", 1)
    configure_tensorflow(cpus, setup.mixed_precision)
    import keras

    keras.backend.clear_session()  # a reused worker starts each trial from a clean Keras state
    seed = trial_seed(setup.seed, config)
    if restored is not None:
        with restored.as_directory() as folder:
            model = keras.models.load_model(os.path.join(folder, MODEL_FILE), safe_mode=True)
    else:
        keras.utils.set_random_seed(seed)
        spec = ModelSpec(task=prepared.task, input_shape=prepared.x_train.shape[1:], output_dim=prepared.output_dim,
                         num_words=prepared.num_words, optimizer=setup.optimizer, bidirectional=setup.bidirectional,
                         dropout=setup.dropout, loss=setup.loss)
        model = build_model(spec, config["layers"], config["units"], config["learning_rate"], seed=seed)
    state["build_s"] += time.perf_counter() - tick

    static = {
        "params": int(model.count_params()),
        "node_ip": ray.util.get_node_ip_address(),
        "gpu_ids": ",".join(str(g) for g in context.get_accelerator_ids().get("GPU", [])),
        "node_id": context.get_node_id(),
        "pid": os.getpid(),
    }
    epochs = int(config["epochs"])
    samples = len(prepared.x_train)
    if state["epoch"] >= epochs and state.get("last_metrics"):
        # finished before a crash lost the news: say it again, train nothing
        tune.report({**state["last_metrics"], "retries": state["retries"]})
        return
    for epoch in range(int(state["epoch"]), epochs):
        started = time.perf_counter()
        # the epoch's own seed, not a global RNG: a restart mid-trial replays the same order.
        # (keras.utils.set_random_seed per epoch would do too, but it costs a retrace every epoch)
        order = np.random.default_rng(epoch_seed(seed, epoch)).permutation(samples)
        tick = time.perf_counter()
        loss = train_epoch(model, prepared.x_train, prepared.y_train, setup.batch_size, order)
        state["train_s"] += time.perf_counter() - tick

        tick = time.perf_counter()
        predicted = predict(model, prepared.x_val)
        scores = {f"val_{k}": v for k, v in prepared.scores("val", predicted).items()}
        loss_name = "binary_crossentropy" if prepared.task == "classification" else setup.loss
        scores["val_loss"] = validation_loss(loss_name, prepared.y_val, predicted)
        state["eval_s"] += time.perf_counter() - tick

        score = scores[setup.metric]
        if np.isfinite(score) and _better(score, state["best"], setup.mode):
            state["best"], state["best_epoch"] = score, epoch + 1
        state["epoch"] = epoch + 1
        metrics = {
            "epoch": epoch + 1,
            "loss": loss,
            **scores,
            f"best_{setup.metric}": state["best"],
            "best_epoch": state["best_epoch"],
            "epoch_s": time.perf_counter() - started,
            "retries": state["retries"],
            "started_at": state["started_at"],
            **{name: state[name] for name in TIMERS},
            **static,
        }
        if state["epoch"] % setup.checkpoint_every == 0 or state["epoch"] == epochs:
            tick = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="hindsight-ckpt-") as folder:
                metrics["finished_at"] = time.time()
                state["last_metrics"] = metrics
                _save_checkpoint(model, state, folder)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
            state["checkpoint_s"] += time.perf_counter() - tick
        else:
            metrics["finished_at"] = time.time()
            tune.report(metrics)
