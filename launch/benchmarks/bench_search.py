"""Performance figures of the two-stage search on this machine, from one run.

    python launch/benchmarks/bench_search.py

Prints:
 1. stage-1 trial throughput of TwoStageSearch against Ray's BasicVariantGenerator on a 200-point
    grid of trivial trainables (same resources, actor reuse on for both);
 2. stage-1 parallel efficiency of the real default sweep: sum of trial seconds / (slots x stage-1 wall);
 3. the median per-trial overhead (total_s - train_s) of that sweep;
 4. speculative against sequential stage-2 wall time on the same sweep (the paths must be equal),
and the notebook's sequential procedure on the same grid for comparison (every trial one after
another: the sum of trial seconds).
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def trivial(config: dict) -> None:
    from ray import tune

    tune.report({"score": float(config["layers"] * 1000 + config["units"]), "epoch": 1, "params": 1})


def throughput(storage: str) -> tuple[float, float]:
    """(TwoStageSearch, BasicVariantGenerator) stage-1 trials per second on the same 200-point grid."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from hindsight_ray import TwoStageSearch

    layers, units = list(range(1, 11)), list(range(1, 21))
    slots = 2

    def rate(tuner: tune.Tuner, trials: int) -> float:
        began = time.perf_counter()
        tuner.fit()
        return trials / (time.perf_counter() - began)

    search = TwoStageSearch(layers=layers, units=units, stage1_epochs=1, max_iterations=1, stage2_epochs=1,
                            metric="score", mode="min")
    ours = rate(tune.Tuner(tune.with_resources(trivial, {"cpu": 1}), tune_config=tune.TuneConfig(
        search_alg=ConcurrencyLimiter(search, max_concurrent=slots), num_samples=search.total_trials,
        reuse_actors=True), run_config=tune.RunConfig(storage_path=storage, name="ours", verbose=0)),
        search.total_trials)  # the 200 stage-1 trials and 2 stage-2 ones
    basic = rate(tune.Tuner(tune.with_resources(trivial, {"cpu": 1}), param_space={
        "layers": tune.grid_search(layers), "units": tune.grid_search(units)}, tune_config=tune.TuneConfig(
        metric="score", mode="min", reuse_actors=True, max_concurrent_trials=slots),
        run_config=tune.RunConfig(storage_path=storage, name="basic", verbose=0)), 200)
    return ours, basic


def sweep(storage: str, name: str, speculative: bool) -> tuple[dict, pd.DataFrame]:
    from hindsight_ray.config.schema import load_config
    from hindsight_ray.running.runner import run_sweep

    config = load_config(None, [f"storage={storage}", f"name={name}", f"search.stage2.speculative={speculative}"])
    summary = run_sweep(config, echo=lambda line: None)
    return summary, pd.read_parquet(Path(storage) / name / "trials.parquet")


def stage_wall(trials: pd.DataFrame, stage: int) -> float:
    rows = trials[trials.stage == stage]
    return float(rows.finished_at.max() - rows.queued_at.min())


def main() -> None:
    import ray

    from hindsight_ray.training.backend import DEFAULT, worker_env

    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": worker_env(DEFAULT)})
    storage = tempfile.mkdtemp(prefix="hindsight-bench-")
    ours, basic = throughput(storage)
    sequential, seq_trials = sweep(storage, "sequential", speculative=False)
    speculative, spec_trials = sweep(storage, "speculative", speculative=True)
    ray.shutdown()

    stage1 = seq_trials[seq_trials.stage == 1]
    wall1 = stage1.finished_at.max() - stage1.started_at.min()
    overhead = (seq_trials.total_s - seq_trials.train_s).median()
    same = [(s["learning_rate"], s["score"]) for s in sequential["stage2"]["learning_rate_path"]] == [
        (s["learning_rate"], s["score"]) for s in speculative["stage2"]["learning_rate_path"]]
    print(f"machine             {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, ray {ray.__version__}")
    print(f"1 trial throughput    TwoStageSearch {ours:.1f} trials/s vs BasicVariantGenerator {basic:.1f} trials/s "
          f"({ours / basic:.0%}) on a 200-point grid of trivial trainables, 2 slots, Tuner.fit wall")
    print(f"2 stage-1 efficiency  {stage1.total_s.sum() / (2 * wall1):.0%} "
          f"(sum of trial seconds {stage1.total_s.sum():.1f} s / (2 slots x {wall1:.1f} s))")
    print(f"3 overhead per trial  median {overhead:.2f} s (total_s - train_s); medians: "
          + ", ".join(f"{c} {seq_trials[c].median():.2f}" for c in ["build_s", "eval_s", "checkpoint_s", "queue_s"]))
    print(f"4 stage-2 wall        speculative {stage_wall(spec_trials, 2):.1f} s vs sequential "
          f"{stage_wall(seq_trials, 2):.1f} s; same path: {same}; speculative trials "
          f"{int(spec_trials.speculative.sum())}, stopped unused {int((spec_trials.status == 'STOPPED').sum())}")
    print(f"  whole sweep         {sequential['wall_s']:.1f} s sequential stage 2, {speculative['wall_s']:.1f} s "
          f"speculative; the notebook's one-at-a-time procedure on the same trials: "
          f"{seq_trials.total_s.sum():.1f} s of trial time back to back (no Ray, no overlap)")


if __name__ == "__main__":
    main()
