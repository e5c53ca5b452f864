"""The sweep against the notebook's sequential Keras loop on the same trials.

    python launch/benchmarks/bench_notebook.py [--set KEY=VALUE ...]

Runs the sweep (default: the airline sweep with log + difference, 12 lags, 50 epochs in both stages, batch 16:
13 trials), then replays its trials in one process the way the seed notebook does: for each (layers, units,
learning rate, epochs), build and compile the same Keras LSTM, ``model.fit(..., validation_data=...)``, and
``model.evaluate`` on the test split; TensorFlow uses every core, as a notebook's does. Prints both wall
times and their ratio (the goal: the whole sweep command <= 0.6x the loop), the loop's TensorFlow import
(paid once per notebook kernel, not counted in the loop), and each trial's seconds in both.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from hindsight_ray.config.schema import load_config
from hindsight_ray.data import prepare
from hindsight_ray.running.runner import run_sweep

NOTEBOOK_SWEEP = ["model.batch_size=16", "search.stage1.epochs=50", "search.stage2.epochs=50"]


def notebook_loop(config, trials: pd.DataFrame) -> tuple[float, float, list[float]]:
    """(import seconds, loop seconds, seconds per trial) of the sequential Keras loop over ``trials``."""
    tick = time.perf_counter()
    import keras

    from hindsight_ray.training.model import ModelSpec, build_model
    imported = time.perf_counter() - tick

    prepared = prepare(config.data, seed=config.seed)
    spec = ModelSpec(task=prepared.task, input_shape=prepared.x_train.shape[1:], output_dim=prepared.output_dim,
                     num_words=prepared.num_words, optimizer=config.model.optimizer, loss=config.model.loss,
                     bidirectional=config.model.bidirectional, dropout=config.model.dropout)
    each = []
    began = time.perf_counter()
    for row in trials.itertuples():
        tick = time.perf_counter()
        keras.backend.clear_session()
        model = build_model(spec, int(row.layers), int(row.units), float(row.learning_rate), seed=config.seed)
        model.fit(prepared.x_train, prepared.y_train, epochs=int(row.epochs), batch_size=config.model.batch_size,
                  validation_data=(prepared.x_val, prepared.y_val), verbose=0)
        model.evaluate(prepared.x_test, prepared.y_test, verbose=0)
        each.append(time.perf_counter() - tick)
    return imported, time.perf_counter() - began, each


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--loop", help=argparse.SUPPRESS)  # internal: run only the loop over this trials.parquet
    args = parser.parse_args()
    if args.loop:  # a fresh process, as a notebook kernel is: its own TensorFlow import and thread pools
        config = load_config(None, [*NOTEBOOK_SWEEP, *args.overrides])
        print(json.dumps(notebook_loop(config, pd.read_parquet(args.loop))))
        return
    storage = Path(tempfile.mkdtemp(prefix="hindsight-bench-notebook-"))
    config = load_config(None, [*NOTEBOOK_SWEEP, *args.overrides, f"storage={storage}", "name=bench"])
    began = time.time()
    summary = run_sweep(config, echo=lambda line: None)
    sweep_s = time.time() - began
    trials = pd.read_parquet(storage / "bench" / "trials.parquet").sort_values(["stage", "started_at"])
    trials = trials[trials.status == "TERMINATED"]  # what ran to its end (speculation the loop never needs aside)
    trials.to_parquet(storage / "loop.parquet")
    loop = subprocess.run([sys.executable, __file__, *(f"--set={o}" for o in args.overrides),
                           f"--loop={storage / 'loop.parquet'}"], check=True, capture_output=True, text=True)
    imported, loop_s, each = json.loads(loop.stdout.strip().splitlines()[-1])
    print(f"trials             {len(trials)} ({int((trials.stage == 1).sum())} stage 1, "
          f"{int((trials.stage == 2).sum())} stage 2), {int(trials.epochs.sum())} trial-epochs, "
          f"batch {config.model.batch_size}")
    print(f"sweep command      {sweep_s:.1f} s (Ray start to report; Tuner.fit {summary['wall_s']:.1f} s)")
    print(f"notebook loop      {loop_s:.1f} s (build, fit, evaluate per trial; TensorFlow import {imported:.1f} s "
          "before it, not counted)")
    print(f"ratio              sweep / loop {sweep_s / loop_s:.2f}x (goal <= 0.6x); Tuner.fit / loop "
          f"{summary['wall_s'] / loop_s:.2f}x")
    print("per trial          sweep total_s " + " ".join(f"{s:.1f}" for s in trials.total_s)
          + " | loop " + " ".join(f"{s:.1f}" for s in each))


if __name__ == "__main__":
    main()
