"""TwoStageSearch as a plain Ray Tune searcher with any trainable, on a real local Ray."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest

tune = pytest.importorskip("ray.tune")  # not under -m "not slow": see conftest.py

from hindsight_ray import TwoStageSearch  # noqa: E402

pytestmark = pytest.mark.slow


def sleepy(config: dict, meet: str = "") -> None:
    """A deterministic stand-in for training: the score depends only on the hyperparameters. With ``meet`` (a
    folder) a stage-1 trial lasts until a later stage-1 trial has started or all four have (at most 20 s):
    whether two of them overlap is then not a matter of how fast a loaded machine starts workers."""
    started = time.time()
    mine = f"{time.time_ns():020d}-{os.getpid()}"
    if meet and config["stage"] == 1:
        Path(meet, mine).touch()
        while time.time() < started + 20:
            names = [p.name for p in Path(meet).iterdir()]
            if len(names) == 4 or any(name > mine for name in names):
                break
            time.sleep(0.02)
    time.sleep(0.2)
    score = abs(config["units"] - 8) + config["layers"] + abs(config["learning_rate"] - 0.004) * 100
    tune.report({"loss": score, "epoch": config["epochs"], "params": config["units"], "started": started,
                 "ended": time.time()})


def run(tmp_path, name: str, **tune_config) -> tuple[TwoStageSearch, list[dict]]:
    search = TwoStageSearch(layers=[1, 2], units=[4, 8], stage1_epochs=1, max_iterations=4, stage2_epochs=1,
                            metric="loss", mode="min")
    meet = tmp_path / "started"
    meet.mkdir()
    trainable = tune.with_parameters(sleepy, meet=str(meet) if tune_config else "")
    grid = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=search, num_samples=search.total_trials,
                                                          **tune_config),
                      run_config=tune.RunConfig(storage_path=str(tmp_path), name=name, verbose=0)).fit()
    return search, [{**r.config, **r.metrics} for r in grid]


@pytest.mark.parametrize("tune_config", [{}, {"max_concurrent_trials": 2}], ids=["plain", "max_concurrent_trials"])
def test_stage1_runs_in_parallel_with_or_without_a_concurrency_limit(local_ray, tmp_path, tune_config):
    search, rows = run(tmp_path, "plain", **tune_config)
    stage1 = [r for r in rows if r["stage"] == 1]
    stage2 = sorted((r for r in rows if r["stage"] == 2), key=lambda r: r["started"])
    assert len(stage1) == 4 and len(stage2) == 3
    if tune_config:  # N pending trials: stage 1 starts at once. Without a limit Tune keeps one pending, and
        # whether two trials overlap depends on how fast a worker starts (on a loaded machine they may not).
        # (A trial waits for a later one to start: one that ran alone ends 20 s later, apart from the rest.)
        assert any(a["started"] < b["ended"] and b["started"] < a["ended"]
                   for a, b in itertools.combinations(stage1, 2))
    assert all(a["ended"] <= b["started"] for a, b in zip(stage2, stage2[1:], strict=False))
    assert [r["learning_rate"] for r in stage2] == [0.02, 0.01, 0.005]
    assert (search.policy.winner.layers, search.policy.winner.units) == (1, 8)


def bowl(config: dict, meet: str = "") -> None:
    """A stand-in trial whose score is a bowl in the learning rate (bottom at 0.006): the rule walks down
    and bisects, so every stage-2 decision matters. With ``meet`` (a folder) a stage-2 trial lasts 0.5 s and
    then until a later trial has started (at most 10 s more): whether a speculative trial starts before the
    trial deciding it has ended is then not a matter of how fast a loaded machine starts workers."""
    started = time.time()
    mine = f"{time.time_ns():020d}-{os.getpid()}"
    if meet and config["stage"] == 2:
        Path(meet, mine).touch()
    time.sleep(0.5)
    while meet and config["stage"] == 2 and time.time() < started + 10.5:
        if any(p.name > mine for p in Path(meet).iterdir()):
            break
        time.sleep(0.05)
    score = abs(config["learning_rate"] - 0.006) * 1000 + config["units"] / 100 + config["layers"]
    tune.report({"loss": score, "epoch": config["epochs"], "params": config["units"], "started": started,
                 "ended": time.time()})


def sequential_path() -> list[float]:
    """The learning rates the sequential rule decides on the bowl, from the pure policy (no Ray)."""
    from hindsight_ray.search.policy import TwoStagePolicy

    policy = TwoStagePolicy(layers=[1, 2], units=[4, 8, 16, 32], stage1_learning_rate=0.001, stage1_epochs=1,
                            max_learning_rate=0.02, max_iterations=24, stage2_epochs=1, mode="min")
    index = 0
    while not isinstance(suggestion := policy.suggest(f"t{index}"), str):
        config = suggestion.as_config()
        policy.complete(f"t{index}", abs(config["learning_rate"] - 0.006) * 1000 + config["units"] / 100
                        + config["layers"], params=config["units"])
        index += 1
    return [step["learning_rate"] for step in policy.learning_rate_path()]


@pytest.mark.parametrize("slots", [4])  # launch/benchmarks/bench_scale.py measures 4 and 8 (speculation)
def test_speculation_decides_several_iterations_a_round(local_ray, tmp_path, slots):
    """With S slots (warm workers kept across the stage-1 barrier), stage 2 takes about
    ceil(K / log2(S + 1)) rounds instead of K, on the sequential rule's exact path. A round ends when a
    trial on the path could only start after the one before it on the path had ended."""
    from ray.tune.search import ConcurrencyLimiter

    search = TwoStageSearch(layers=[1, 2], units=[4, 8, 16, 32], stage1_epochs=1, max_iterations=24,
                            stage2_epochs=1, metric="loss", mode="min", speculative=True)
    meet = tmp_path / "started"
    meet.mkdir()
    trainable = tune.with_resources(tune.with_parameters(bowl, meet=str(meet)), {"cpu": 2 / slots})
    grid = tune.Tuner(trainable, tune_config=tune.TuneConfig(
        search_alg=ConcurrencyLimiter(search, max_concurrent=slots), scheduler=search.scheduler(),
        num_samples=search.total_trials, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name=f"s{slots}", verbose=0)).fit()
    path = search.policy.learning_rate_path()
    assert [step["learning_rate"] for step in path] == sequential_path()
    by_id = {r.metrics["trial_id"]: r.metrics for r in grid if r.metrics}
    on_path = [by_id[step["trial_id"]] for step in path]
    rounds = 1 + sum(b["started"] >= a["ended"] for a, b in zip(on_path, on_path[1:], strict=False))
    k = len(path)
    # the order of events, not their speed: some decision's trial ran before the one deciding it had ended
    # (on a quiet machine rounds <= ceil(k / log2(slots + 1)); launch/benchmarks/bench_search.py measures that)
    assert k == 5 and rounds < k, (slots, rounds)
    assert any(record.speculative for record in search.policy.stage2_trials())
