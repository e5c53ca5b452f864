"""Per-trial bookkeeping of the two-stage search against Ray Tune's own, side by side in one run.

    python launch/benchmarks/bench_throughput.py [--rounds 2] [--grid 10x20] [--slots 4]

A grid of trivial trials (one report each, nothing trained) runs through Tune three ways, alternating,
best of ``--rounds`` each:
  basic   Ray's BasicVariantGenerator (grid_search), max_concurrent_trials = slots
  ours    TwoStageSearch with its scheduler and TwoStageLimiter, as the README shows it
  plain   TwoStageSearch with Ray's ConcurrencyLimiter and Tune's default scheduler
  tuned   TwoStageSearch with its scheduler and TuneConfig(max_concurrent_trials=slots) (Ray's limiter)
and prints trials per second, the ratio to basic, and the driver's peak RSS. The stage-2 trials of the
two-stage runs (2) are counted with the grid. Ray is started once, 2 CPUs, reuse_actors on for all.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import tempfile
import time

os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


WAYS = ("basic", "ours", "plain", "tuned")


def trivial(config: dict) -> None:
    from ray import tune

    tune.report({"score": float(config["layers"] * 1000 + config["units"]), "epoch": 1, "params": 1})


def run(way: str, layers: list[int], units: list[int], slots: int, storage: str) -> float:
    """Trials per second of one run."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from hindsight_ray import TwoStageLimiter, TwoStageSearch

    trainable = tune.with_resources(trivial, {"cpu": 2 / slots})  # the slots fill the 2 CPUs
    run_config = tune.RunConfig(storage_path=storage, name=f"{way}-{time.time_ns()}", verbose=0)
    if way == "basic":
        trials = len(layers) * len(units)
        tuner = tune.Tuner(trainable, param_space={"layers": tune.grid_search(layers), "units": tune.grid_search(units)},
                           tune_config=tune.TuneConfig(metric="score", mode="min", reuse_actors=True,
                                                       max_concurrent_trials=slots), run_config=run_config)
    else:
        search = TwoStageSearch(layers=layers, units=units, stage1_epochs=1, max_iterations=2, stage2_epochs=1,
                                metric="score", mode="min", speculative=False)
        trials = search.total_trials
        limiter = {"ours": TwoStageLimiter(search, max_concurrent=slots), "tuned": search,
                   "plain": ConcurrencyLimiter(search, max_concurrent=slots)}[way]
        tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(
            search_alg=limiter, scheduler=search.scheduler() if way != "plain" else None, num_samples=trials,
            reuse_actors=True, max_concurrent_trials=slots if way == "tuned" else None), run_config=run_config)
    began = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - began
    assert len(grid) == trials and not grid.errors, (way, len(grid), len(grid.errors))
    return trials / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--grid", default="10x20", help="layers x units, e.g. 10x20 (200 trials)")
    parser.add_argument("--slots", type=int, default=4)
    args = parser.parse_args()
    n_layers, n_units = (int(x) for x in args.grid.split("x"))
    layers, units = list(range(1, n_layers + 1)), list(range(1, n_units + 1))
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hr-throughput-") as storage:
        for round_ in range(args.rounds):
            for way in WAYS if round_ % 2 == 0 else WAYS[::-1]:
                rate = run(way, layers, units, args.slots, storage)
                best[way] = max(best.get(way, 0.0), rate)
                print(f"round {round_ + 1} {way:<5} {rate:6.1f} trials/s", flush=True)
    ray.shutdown()
    print(f"grid {args.grid} ({len(layers) * len(units)} stage-1 trials), {args.slots} slots, best of {args.rounds}")
    for way in WAYS:
        print(f"{way:<5} {best[way]:6.1f} trials/s  {best[way] / best['basic']:.2f}x basic")
    print(f"driver peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
