"""TwoStageSearch as a plain Ray Tune searcher with any trainable, on a real local Ray."""

from __future__ import annotations

import itertools
import time

import pytest

tune = pytest.importorskip("ray.tune")  # not under -m "not slow": see conftest.py

from hindsight_ray import TwoStageSearch  # noqa: E402

pytestmark = pytest.mark.slow


def sleepy(config: dict) -> None:
    """A deterministic stand-in for training: the score depends only on the hyperparameters."""
    started = time.time()
    time.sleep(3)
    score = abs(config["units"] - 8) + config["layers"] + abs(config["learning_rate"] - 0.004) * 100
    tune.report({"loss": score, "epoch": config["epochs"], "params": config["units"], "started": started,
                 "ended": time.time()})


def run(tmp_path, name: str, **tune_config) -> tuple[TwoStageSearch, list[dict]]:
    search = TwoStageSearch(layers=[1, 2], units=[4, 8], stage1_epochs=1, max_iterations=4, stage2_epochs=1,
                            metric="loss", mode="min")
    grid = tune.Tuner(sleepy, tune_config=tune.TuneConfig(search_alg=search, num_samples=search.total_trials,
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
        # whether two trials overlap depends on how fast a worker starts (on a loaded machine they may not)
        assert any(a["started"] < b["ended"] and b["started"] < a["ended"]
                   for a, b in itertools.combinations(stage1, 2))
    assert all(a["ended"] <= b["started"] for a, b in zip(stage2, stage2[1:], strict=False))
    assert [r["learning_rate"] for r in stage2] == [0.02, 0.01, 0.005]
    assert (search.policy.winner.layers, search.policy.winner.units) == (1, 8)
