"""Run the default sweep once and print where the time went.

    python launch/benchmarks/bench_default_sweep.py [--set KEY=VALUE ...]

Prints: wall time, the sum of trial seconds, the physical limit (training seconds alone, stage 1 over the
slots and stage 2 in a row) and how far the sweep is from it, stage-1 overlap (mean trials running at once while
stage 1 ran) and parallel efficiency (trial seconds / (slots x stage-1 wall)), and the median
per-trial overhead (total_s - train_s) split into its parts, and the command's fixed costs (Ray start, the
first trial's worker start with its TensorFlow import, finalize with the test evaluation, report drawing, Ray
shutdown), timed by wrapping the runner's steps.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

from hindsight_ray.config.schema import load_config
from hindsight_ray.running.runner import run_sweep


def stage_overlap(trials: pd.DataFrame) -> tuple[float, float]:
    """(stage wall seconds, mean trials running at once during it)."""
    start, end = trials.started_at.min(), trials.finished_at.max()
    busy = (trials.finished_at - trials.started_at).sum()
    return end - start, busy / (end - start)


class Phases:
    """Wall-clock marks around the runner's steps (wrapped in place: measurement only)."""

    def __init__(self) -> None:
        import contextlib

        from ray import tune

        import hindsight_ray.reporting.report as report
        import hindsight_ray.running.runner as runner

        self.marks: dict[str, float] = {}
        for module, name in [(runner, "finalize"), (report, "write_sweep_report")]:
            setattr(module, name, self._timed(name, getattr(module, name)))
        session = runner.ray_session

        @contextlib.contextmanager
        def timed_session(config):
            self.marks["ray_start>"] = time.time()
            with session(config) as value:
                self.marks["ray_start<"] = time.time()
                yield value
                self.marks["ray_shutdown>"] = time.time()
            self.marks["ray_shutdown<"] = time.time()

        runner.ray_session = timed_session
        fit = tune.Tuner.fit

        def timed_fit(tuner, *args, **kwargs):
            self.marks["fit>"] = time.time()
            try:
                return fit(tuner, *args, **kwargs)
            finally:
                self.marks["fit<"] = time.time()

        tune.Tuner.fit = timed_fit

    def _timed(self, name, function):
        def timed(*args, **kwargs):
            self.marks[name + ">"] = time.time()
            try:
                return function(*args, **kwargs)
            finally:
                self.marks[name + "<"] = time.time()
        return timed

    def seconds(self, name: str) -> float:
        return self.marks.get(name + "<", float("nan")) - self.marks.get(name + ">", float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    storage = Path(tempfile.mkdtemp(prefix="hindsight-bench-"))
    config = load_config(None, [*args.overrides, f"storage={storage}", "name=bench"])
    phases = Phases()
    began = time.time()
    summary = run_sweep(config, echo=lambda line: None)
    command_s = time.time() - began
    trials = pd.read_parquet(storage / "bench" / "trials.parquet")
    stage1 = trials[trials.stage == 1]
    slots = max(1, int((os.cpu_count() or 1) // config.resources.cpus_per_trial))  # as trial_slots counts them here
    if config.resources.max_concurrent:
        slots = config.resources.max_concurrent
    wall1, overlap1 = stage_overlap(stage1)
    overhead = trials.total_s - trials.train_s
    print(f"machine            {platform.node()} {platform.machine()} python {platform.python_version()}")
    print(f"run_sweep          {command_s:.1f} s (Ray start to summary written)")
    print(f"sweep wall         {summary['wall_s']:.1f} s (Tuner.fit)")
    print(f"trial seconds      {summary['trial_s']:.1f} s over {len(trials)} trials, "
          f"{summary['trial_epochs']} trial-epochs")
    print(f"stage 1            {wall1:.1f} s wall, {overlap1:.2f} trials running at once on average, "
          f"parallel efficiency {stage1.total_s.sum() / (slots * wall1):.0%} of {slots} slots")
    stage2_rows = trials[trials.stage == 2]
    print(f"stage 2            {stage2_rows.finished_at.max() - stage2_rows.started_at.min():.1f} s wall, "
          f"{stage2_rows.total_s.sum():.1f} trial-seconds over {len(stage2_rows)} trials "
          f"({int(stage2_rows.speculative.sum())} speculative, {int(stage2_rows.used.sum())} on the path)")
    stage2 = trials[trials.stage == 2]
    limit = stage1.train_s.sum() / slots + stage2.train_s.sum()  # training alone: stage 1 spread, stage 2 in a row
    print(f"physical limit     {limit:.1f} s (stage-1 training seconds / {slots} slots + stage-2 training seconds): "
          f"Tuner.fit {summary['wall_s'] / limit:.2f}x, the whole run {command_s / limit:.2f}x")
    print(f"overhead / trial   median {overhead.median():.2f} s (total_s - train_s); medians: "
          + ", ".join(f"{c} {trials[c].median():.2f}" for c in ["queue_s", "data_s", "build_s", "eval_s",
                                                               "checkpoint_s"]))
    first_start = trials.started_at.min() - phases.marks["fit>"]  # Tune's start and the first worker's
    print(f"fixed costs        Ray start {phases.seconds('ray_start'):.1f} s, fit to the first trial's start "
          f"{first_start:.1f} s, first trials' build (TensorFlow import in a new worker) "
          f"{stage1.sort_values('started_at').build_s.iloc[:slots].median():.1f} s, finalize (test evaluation, "
          f"tables) {phases.seconds('finalize'):.1f} s, report {phases.seconds('write_sweep_report'):.1f} s, "
          f"Ray shutdown {phases.seconds('ray_shutdown'):.1f} s")
    best = summary["best"]
    print(f"best               layers={best['layers']} units={best['units']} lr={best['learning_rate']:g} "
          f"epoch {best['epoch']}/{best['epochs']} (search.score {summary['score']}): val_rmse={best['validation']:.2f} "
          f"(last epoch {best['last_validation']:.2f}) test_rmse={best['test_rmse']:.2f}; baselines "
          + ", ".join(f"{k} {v['rmse']:.2f}" for k, v in summary["baselines"].items()))
    naive = summary["baselines"].get("seasonal_naive", {}).get("rmse")
    if naive:
        print(f"vs seasonal naive  test RMSE {best['test_rmse'] / naive:.2f}x ({1 - best['test_rmse'] / naive:.0%} better)")


if __name__ == "__main__":
    main()
