"""Cluster-sized figures on this machine, from one run:

    python launch/benchmarks/bench_scale.py [--trials 256] [--seconds 2] [--finalize 1000]

1. a simulated cluster (``ray.cluster_utils.Cluster``: 4 nodes x 8 logical GPUs, 32 slots), a
   4 x 64 = 256-point stage-1 grid of trivial trials that sleep ``--seconds`` at 1 GPU each, through
   TwoStageSearch and through Ray's BasicVariantGenerator on the same grid, one after the other in the
   same cluster: slot occupancy = trial-seconds / (32 x span) of each, span from the first trial's start
   to the last stage-1 trial's end;
2. the pure two-stage policy at a 10,000-point grid (100 x 100): time per suggestion (suggest and
   complete every point) and the size and time of a state save (``get_state`` + JSON, as
   TwoStageSearch.save writes it) at the end of stage 1;
3. finalizing a real 1,000-trial experiment (3 epochs each, the trainable's result keys): reading Ray's
   records, the trials and epochs tables and the summary;
4. the driver's peak memory.

Every Ray process it starts is its own (its own temp dir) and is stopped by ``Cluster.shutdown``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import resource
import tempfile
import time

os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

NODES, GPUS_PER_NODE = 4, 8
SLOTS = NODES * GPUS_PER_NODE


def sleeper(config: dict) -> None:
    """A stand-in trial: sleeps, then reports what the real trainable reports at its last epoch."""
    from ray import tune

    started = time.time()
    time.sleep(config.get("seconds", 2.0))
    score = float(config["layers"] * 1000 + config["units"])
    tune.report({"score": score, "epoch": int(config.get("epochs", 1)), "params": config["units"],
                 "started_at": started, "finished_at": time.time()})


def occupancy(results, stage1_only: bool) -> tuple[float, float, int, float]:
    """From the trials' own clocks: (trial-seconds / (slots x span), span, trials, steady share). The steady
    share counts only the window from the moment the 32nd trial started (every slot has had its worker
    started once) to the moment the last trial started: the searcher keeping warm slots busy, without the
    start of 32 worker processes on this machine's cores or the drain at the end."""
    rows = [r.metrics for r in results if r.metrics and (not stage1_only or r.config.get("stage") == 1)]
    began = min(r["started_at"] for r in rows)
    ended = max(r["finished_at"] for r in rows)
    busy = sum(r["finished_at"] - r["started_at"] for r in rows)
    starts = sorted(r["started_at"] for r in rows)
    low, high = starts[min(SLOTS, len(starts)) - 1], starts[-1]
    steady = sum(max(0.0, min(r["finished_at"], high) - max(r["started_at"], low)) for r in rows)
    return busy / (SLOTS * (ended - began)), ended - began, len(rows), steady / (SLOTS * max(high - low, 1e-9))


def cluster_occupancy(storage: str, layers: list[int], units: list[int], seconds: float) -> dict[str, tuple]:
    from ray import tune
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    from hindsight_ray import TwoStageSearch

    trainable = tune.with_resources(sleeper, {"cpu": 0, "gpu": 1})
    out = {}
    search = TwoStageSearch(layers=layers, units=units, stage1_epochs=1, max_iterations=1, stage2_epochs=1,
                            metric="score", mode="min")
    began = time.perf_counter()
    grid = tune.Tuner(trainable, param_space={"seconds": seconds}, tune_config=tune.TuneConfig(
        search_alg=ConcurrencyLimiter(search, max_concurrent=SLOTS), num_samples=search.total_trials,
        reuse_actors=True, max_concurrent_trials=SLOTS),
        run_config=tune.RunConfig(storage_path=storage, name="two_stage", verbose=0)).fit()
    out["TwoStageSearch"] = (*occupancy(grid, stage1_only=True), time.perf_counter() - began)
    began = time.perf_counter()
    basic = tune.Tuner(trainable, param_space={
        "layers": tune.grid_search(layers), "units": tune.grid_search(units), "seconds": seconds, "epochs": 1,
        "stage": 1}, tune_config=tune.TuneConfig(search_alg=BasicVariantGenerator(max_concurrent=SLOTS),
                                                  reuse_actors=True, max_concurrent_trials=SLOTS),
        run_config=tune.RunConfig(storage_path=storage, name="basic", verbose=0)).fit()
    out["BasicVariantGenerator"] = (*occupancy(basic, stage1_only=True), time.perf_counter() - began)
    return out


def stage2_span(storage: str, name: str, slots: int, speculative: bool, seconds: float) -> dict:
    """Stage 2 of a two-stage search (an 8-point stage-1 grid) of stand-in trials on ``slots`` slots (0.25 CPU each):
    its span, the decided path, and how many trials ran."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from hindsight_ray import TwoStageSearch

    search = TwoStageSearch(layers=[1, 2], units=[4, 8, 16, 32], stage1_epochs=1, max_learning_rate=0.02, max_iterations=24,
                            stage2_epochs=1, metric="score", mode="min", speculative=speculative)

    def trial(config: dict) -> None:
        from ray import tune as ray_tune

        started = time.time()
        time.sleep(config["seconds"])
        # a bowl in the learning rate with its bottom at 0.006: the rule must walk down and bisect
        score = abs(config["learning_rate"] - 0.006) * 1000 + config["units"] / 100
        ray_tune.report({"score": score, "epoch": 1, "params": config["units"], "started_at": started,
                         "finished_at": time.time()})

    grid = tune.Tuner(tune.with_resources(trial, {"cpu": 0.25}), param_space={"seconds": seconds},
                      tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(search, max_concurrent=slots),
                                                  scheduler=search.scheduler(), num_samples=search.total_trials,
                                                  reuse_actors=True, max_concurrent_trials=slots),
                      run_config=tune.RunConfig(storage_path=storage, name=name, verbose=0)).fit()
    rows = sorted((r.metrics for r in grid if r.metrics and r.config.get("stage") == 2),
                  key=lambda m: m["started_at"])
    path = [(step["learning_rate"], step["score"]) for step in search.policy.learning_rate_path()]
    return {"span": max(m["finished_at"] for m in rows) - min(m["started_at"] for m in rows), "trials": len(rows),
            "decisions": len(path), "path": path, "starts": [round(m["started_at"] - rows[0]["started_at"], 2)
                                                              for m in rows]}


def policy_at(points_side: int = 100) -> tuple[float, float, int, float]:
    """(ms per suggestion+completion, median ms of TwoStageSearch.save, its bytes, ms of a restore) at side^2
    points."""
    from hindsight_ray import TwoStageSearch

    side = list(range(1, points_side + 1))
    # the public Searcher API Tune calls: suggest, then on_trial_complete with the trial's result
    search = TwoStageSearch(layers=side, units=side, stage1_epochs=1, max_iterations=16,
                            stage2_epochs=1, metric="score", mode="min")
    began = time.perf_counter()
    for index in range(points_side * points_side):
        trial_id = f"t{index:05d}"
        suggestion = search.suggest(trial_id)
        assert isinstance(suggestion, dict)
        search.on_trial_complete(trial_id, {"score": float((index * 7919) % 10007), "params": index,
                                            "epoch": 1})
    per_suggest = (time.perf_counter() - began) * 1000 / (points_side * points_side)
    # the searcher Tune would save, at the end of stage 1
    path = os.path.join(tempfile.mkdtemp(prefix="hindsight-state-"), "searcher-state.pkl")
    saves = []
    for _ in range(5):
        began = time.perf_counter()
        search.save(path)
        saves.append(time.perf_counter() - began)
    began = time.perf_counter()
    TwoStageSearch(layers=[1], units=[1], metric="score", mode="min").restore(path)
    load = time.perf_counter() - began
    return per_suggest, sorted(saves)[2] * 1000, os.path.getsize(path), load * 1000


def finalize_at(storage: str, trials: int) -> dict[str, float]:
    """Seconds to read a real experiment of ``trials`` trials and build its tables and summary."""
    from ray import tune

    from hindsight_ray.config.schema import load_config
    from hindsight_ray.reporting import tables
    from hindsight_ray.running.finalize import load_outcomes, score_trials, summarize

    def three_epochs(config: dict) -> None:
        started = time.time()
        for epoch in range(1, 4):
            value = 10.0 / epoch + config["units"] / 1000
            tune.report({"epoch": epoch, "loss": value, "val_rmse": value, "val_mae": value, "val_loss": value,
                         "score": value, "score_epoch": epoch, "best_epoch": epoch, "epoch_s": 0.01, "params": 10,
                         "retries": 0, "started_at": started, "finished_at": time.time(), "data_s": 0.0,
                         "build_s": 0.0, "train_s": 0.01, "eval_s": 0.0, "checkpoint_s": 0.0, "node_ip": "127.0.0.1",
                         "node_id": "n", "gpu_ids": "", "pid": os.getpid()})

    units = list(range(1, trials + 1))
    began = time.perf_counter()
    tune.Tuner(tune.with_resources(three_epochs, {"cpu": 0.25}), param_space={
        "layers": 1, "units": tune.grid_search(units), "learning_rate": 0.01, "epochs": 3},
        tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=8),
        run_config=tune.RunConfig(storage_path=storage, name="thousand", verbose=0)).fit()
    ran = time.perf_counter() - began
    config = load_config(None, ["search.strategy=grid"])
    experiment = f"{storage}/thousand"
    times = {"run": ran}
    began = time.perf_counter()
    outcomes = load_outcomes(experiment)
    times["read"] = time.perf_counter() - began
    began = time.perf_counter()
    trials_table, _ = score_trials(config, outcomes, None, queued_at={})
    tables.parquet_bytes(trials_table)
    tables.parquet_bytes(tables.epochs_table(outcomes))
    summarize(config, experiment, trials_table, None, {}, {})
    times["tables and summary"] = time.perf_counter() - began
    times["trials"] = len(outcomes)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="each stand-in trial's sleep")
    parser.add_argument("--widths", type=int, default=64, help="stage-1 widths (x 4 depths)")
    parser.add_argument("--finalize", type=int, default=1000, help="trials of the experiment to finalize")
    parser.add_argument("--parts", default="policy,occupancy,finalize", help="which figures, comma-separated")
    args = parser.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    storage = tempfile.mkdtemp(prefix="hindsight-scale-")
    print(f"machine      {platform.node()} {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, ray {ray.__version__}, {time.strftime('%Y-%m-%d')}")
    if "policy" in args.parts:
        per_suggest, save_ms, size, load_ms = policy_at(100)
        print(f"policy       10,000-point grid: {per_suggest:.3f} ms a suggestion (suggest + complete), searcher state "
              f"save {save_ms:.1f} ms ({size / 1e6:.2f} MB JSON file), restore {load_ms:.1f} ms")

    if "occupancy" in args.parts:
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "num_gpus": 0, "include_dashboard": False, "dashboard_host": "127.0.0.1"})
        try:
            for _ in range(NODES):
                cluster.add_node(num_cpus=GPUS_PER_NODE, num_gpus=GPUS_PER_NODE)
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.WARNING)
            layers, units = [1, 2, 3, 4], list(range(1, args.widths + 1))
            for name, (share, span, count, steady, wall) in cluster_occupancy(storage, layers, units,
                                                                              args.seconds).items():
                print(f"occupancy    {name:22s} {share:.2f} of {SLOTS} slots busy over {span:.1f} s, {steady:.2f} "
                      f"once every slot's worker had started ({count} trials of {args.seconds:g} s; ideal span "
                      f"{count * args.seconds / SLOTS:.1f} s; Tuner.fit {wall:.1f} s)")
        finally:
            ray.shutdown()
            cluster.shutdown()
    if "speculation" in args.parts:  # stage 2 on 4 and 8 slots, speculative against sequential, 1-s trials
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        try:
            for slots in (4, 8):
                sequential = stage2_span(storage, f"seq{slots}", slots, False, 1.0)
                ahead = stage2_span(storage, f"spec{slots}", slots, True, 1.0)
                print(f"speculation  {slots} slots: stage 2 {ahead['span']:.1f} s speculative ({ahead['trials']} trials) vs "
                      f"{sequential['span']:.1f} s sequential ({sequential['trials']} trials) for "
                      f"{sequential['decisions']} decisions: {ahead['span'] / sequential['span']:.2f}x; same path: "
                      f"{ahead['path'] == sequential['path']}; speculative starts {ahead['starts'][:8]}")
        finally:
            ray.shutdown()
    if "finalize" in args.parts:  # a plain local Ray: the experiment is real, the cluster is not needed
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        try:
            times = finalize_at(storage, args.finalize)
        finally:
            ray.shutdown()
        print(f"finalize     {int(times['trials'])} trials x 3 epochs: read Ray's records {times['read']:.1f} s, "
              f"tables and summary {times['tables and summary']:.1f} s (running them took {times['run']:.0f} s)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"driver       peak memory {peak:,.0f} MB")


if __name__ == "__main__":
    main()
