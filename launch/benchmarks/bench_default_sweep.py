"""Run the default sweep once and print where the time went.

    python launch/benchmarks/bench_default_sweep.py [--set KEY=VALUE ...]

Prints: wall time, the sum of trial seconds, the physical limit (training seconds alone, stage 1 over the
slots and stage 2 in a row) and how far the sweep is from it, stage-1 overlap (mean trials running at once while
stage 1 ran) and parallel efficiency (trial seconds / (slots x stage-1 wall)), and the median
per-trial overhead (total_s - train_s) split into its parts, and the command's fixed costs (start-up with
Ray's start, the first trial's worker start with its TensorFlow import, finalize with the test evaluation,
the report and Ray's shutdown), timed through public hooks only: the API's ``echo`` (when each console line
comes), a Ray Tune callback passed with ``callbacks=`` (when Tune's run begins and ends) and the
times of the files a sweep writes (summary.json ends finalize, report.html the report).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

import hindsight_ray as hr


def stage_overlap(trials: pd.DataFrame) -> tuple[float, float]:
    """(stage wall seconds, mean trials running at once during it)."""
    start, end = trials.started_at.min(), trials.finished_at.max()
    busy = (trials.finished_at - trials.started_at).sum()
    return end - start, busy / (end - start)


class Phases:
    """Wall-clock marks from public hooks: each console line as it comes (``echo``), and a Tune callback's
    ``setup`` (Tune's run begins) and ``on_experiment_end`` (it ends)."""

    def __init__(self) -> None:
        from ray.tune import Callback

        self.lines: list[tuple[float, str]] = []
        self.marks: dict[str, float] = {}
        marks = self.marks

        class Marks(Callback):
            def setup(self, **info):
                marks["fit>"] = time.time()

            def on_experiment_end(self, trials, **info):
                marks["fit<"] = time.time()

        self.callback = Marks()

    def echo(self, line: str) -> None:
        self.lines.append((time.time(), line))

    def first(self, prefix: str) -> float:
        """When the first console line starting with ``prefix`` came (nan if none did)."""
        return next((t for t, line in self.lines if line.startswith(prefix)), float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    storage = Path(tempfile.mkdtemp(prefix="hindsight-bench-"))
    config = hr.api.resolve_config(None, [*args.overrides, f"storage={storage}", "name=bench"])
    phases = Phases()
    began = time.time()
    summary = hr.sweep(config, echo=phases.echo, callbacks=[phases.callback]).summary
    command_s = time.time() - began
    trials = pd.read_parquet(storage / "bench" / "trials.parquet")
    stage1 = trials[trials.stage == 1]
    slots = max(1, int((os.cpu_count() or 1) // config.resources.cpus_per_trial))  # as trial_slots counts them here
    if config.resources.max_concurrent:
        slots = config.resources.max_concurrent
    wall1, overlap1 = stage_overlap(stage1)
    overhead = trials.total_s - trials.train_s
    print(f"machine            {platform.node()} {platform.machine()} python {platform.python_version()}")
    print(f"hr.sweep           {command_s:.1f} s (the whole call: checks, Ray start, training, finalize, report)")
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
    # the plan's first line comes once the checks, the data and Ray's start are done
    start_up = phases.first("experiment") - began
    # finalize ends with summary.json, the report with report.html (drawn while Ray shuts down): their
    # files' times; the closing console lines all come once both are done
    finished = (storage / "bench" / "summary.json").stat().st_mtime
    drawn = (storage / "bench" / "report.html").stat().st_mtime
    finalize = finished - phases.marks["fit<"]
    report = drawn - finished
    shutdown = began + command_s - drawn
    print(f"fixed costs        start-up (checks, data, Ray start) {start_up:.1f} s, fit to the first trial's "
          f"start {first_start:.1f} s, first trials' build (TensorFlow import in a new worker) "
          f"{stage1.sort_values('started_at').build_s.iloc[:slots].median():.1f} s, finalize (test evaluation, "
          f"tables) {finalize:.1f} s, report {report:.1f} s, after it (Ray's shutdown, the closing lines) {shutdown:.1f} s")


if __name__ == "__main__":
    main()
