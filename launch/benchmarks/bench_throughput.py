"""Per-trial bookkeeping of the two-stage search against Ray Tune's own, side by side in one run.

    python launch/benchmarks/bench_throughput.py [--rounds 3] [--grid 10x20] [--slots 4]
    python launch/benchmarks/bench_throughput.py --nodes 4 --grid 100x100 --slots 16 --rounds 1 --ways basic tuned

A grid of trivial trials (one report each, nothing trained) runs through Tune several ways, alternating,
the median of ``--rounds`` each (on a 2-core machine single runs of any way scatter by 25-50%, the fast
ones rare, so a best-of compares outliers):
  basic   Ray's BasicVariantGenerator (grid_search), max_concurrent_trials = slots
  tuned   TwoStageSearch with its scheduler and TuneConfig(max_concurrent_trials=slots), as the README shows it
  ours    TwoStageSearch with its scheduler and TwoStageLimiter (what the CLI runs)
  plain   TwoStageSearch with Ray's ConcurrencyLimiter and Tune's default scheduler
For each it prints the stage-1 throughput (grid trials / seconds from fit's start to the last grid trial's
end: the bookkeeping per trial, what the issue's 0.95x is about), the whole run's (the two-stage runs add
their stage-2 trials, 2 here, run one after another behind the stage-1 barrier), the ratios to basic, and the
driver's resident memory after the run and at its peak. Ray is started once, reuse_actors on for all.
``--nodes N`` runs on a simulated cluster (``ray.cluster_utils.Cluster``: a head with no CPUs and N nodes of
``--node-cpus`` logical CPUs each; the trials' CPUs are logical, so more slots than cores is fine for
trials that do nothing), else on a local Ray of 2 CPUs.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import tempfile
import time

os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


WAYS = ("basic", "tuned", "ours", "plain")


def trivial(config: dict) -> None:
    from ray import tune

    tune.report({"score": float(config["layers"] * 1000 + config["units"]), "epoch": 1, "params": 1})


def resident_mib() -> float:
    """The driver's resident memory now."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run(way: str, layers: list[int], units: list[int], slots: int, cpus: float, storage: str) -> dict:
    """One run's stage-1 and whole throughput (trials per second) and the driver's memory after it."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from hindsight_ray import TwoStageLimiter, TwoStageSearch

    grid_ends: list[float] = []

    class GridEnds(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            if trial.config.get("stage", 1) == 1:
                grid_ends.append(time.perf_counter())

    trainable = tune.with_resources(trivial, {"cpu": cpus / slots})  # the slots fill the CPUs
    run_config = tune.RunConfig(storage_path=storage, name=f"{way}-{time.time_ns()}", verbose=0,
                                callbacks=[GridEnds()])
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
    stage1 = len(layers) * len(units)
    assert len(grid_ends) == stage1, (way, len(grid_ends))
    return {"stage1": stage1 / (max(grid_ends) - began), "whole": trials / wall, "wall": wall,
            "rss": resident_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--grid", default="10x20", help="layers x units, e.g. 10x20 (200 trials)")
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--nodes", type=int, default=0, help="simulated nodes (0: a local Ray of 2 CPUs)")
    parser.add_argument("--node-cpus", type=int, default=4, help="logical CPUs of each simulated node")
    parser.add_argument("--ways", nargs="*", default=list(WAYS), choices=WAYS)
    args = parser.parse_args()
    n_layers, n_units = (int(x) for x in args.grid.split("x"))
    layers, units = list(range(1, n_layers + 1)), list(range(1, n_units + 1))
    ways = ["basic", *[w for w in args.ways if w != "basic"]]
    import ray

    cluster = None
    if args.nodes:
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        for _ in range(args.nodes):
            cluster.add_node(num_cpus=args.node_cpus)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.WARNING)
        cpus = float(args.nodes * args.node_cpus)
    else:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        cpus = 2.0
    runs: dict[str, list[dict]] = {way: [] for way in ways}
    try:
        with tempfile.TemporaryDirectory(prefix="hr-throughput-") as storage:
            for round_ in range(args.rounds):
                for way in ways if round_ % 2 == 0 else ways[::-1]:
                    got = run(way, layers, units, args.slots, cpus, storage)
                    runs[way].append(got)
                    print(f"round {round_ + 1} {way:<5} stage 1 {got['stage1']:6.1f} trials/s, whole "
                          f"{got['whole']:6.1f} trials/s ({got['wall']:.1f} s), driver RSS {got['rss']:.0f} MiB",
                          flush=True)
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
    where = f"{args.nodes} simulated nodes x {args.node_cpus} CPUs" if args.nodes else "a local Ray of 2 CPUs"
    print(f"grid {args.grid} ({len(layers) * len(units)} stage-1 trials), {args.slots} slots on {where}, "
          f"median of {args.rounds}")
    median = {way: {key: statistics.median(r[key] for r in runs[way]) for key in ("stage1", "whole")}
              for way in ways}
    for way in ways:
        b, base = {**median[way], "rss": max(r["rss"] for r in runs[way])}, median["basic"]
        print(f"{way:<5} stage 1 {b['stage1']:6.1f} trials/s {b['stage1'] / base['stage1']:.2f}x basic; whole "
              f"{b['whole']:6.1f} trials/s {b['whole'] / base['whole']:.2f}x; driver RSS after a run up to "
              f"{b['rss']:.0f} MiB")
    print(f"driver peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
