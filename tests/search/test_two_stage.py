"""TwoStageSearch as a Ray Tune Searcher: the contract Tune relies on, without a running cluster."""

from __future__ import annotations

import json

import pytest
from ray.tune.search import ConcurrencyLimiter, Searcher

from hindsight_ray import TwoStageSearch


def make_search(**kwargs) -> TwoStageSearch:
    settings = dict(layers=[1], units=[4, 8], stage1_learning_rate=0.001, stage1_epochs=2,
                    max_learning_rate=0.02, max_iterations=3, stage2_epochs=3, metric="val_rmse", mode="min")
    settings.update(kwargs)
    return TwoStageSearch(**settings)


def test_suggestions_carry_the_hyperparameters_and_stage():
    search = make_search()
    config = search.suggest("a")
    assert config == {"stage": 1, "layers": 1, "units": 4, "learning_rate": 0.001, "epochs": 2}
    assert search.total_trials == 2 + 2


def test_wait_is_none_and_the_end_is_finished():
    search = make_search(max_iterations=1)
    search.suggest("a"), search.suggest("b")
    assert search.suggest("c") is None
    search.on_trial_result("a", {"val_rmse": 9.0, "params": 10})
    search.on_trial_complete("a", {"val_rmse": 2.0, "params": 10})
    search.on_trial_complete("b", error=True)
    stage2 = search.suggest("d")
    assert stage2["stage"] == 2 and stage2["units"] == 4 and stage2["learning_rate"] == 0.02
    search.on_trial_complete("d", {"val_rmse": float("nan"), "params": 10})  # NaN counts as a failure
    assert search.policy.trials["d"].status == "error"
    search.suggest("e")
    search.on_trial_complete("e", {"val_rmse": 1.0, "params": 10})
    assert search.suggest("f") == Searcher.FINISHED


def test_metric_and_mode_can_come_from_tune_config():
    search = TwoStageSearch(layers=[1], units=[4])
    assert search.set_search_properties("val_accuracy", "max", {})
    assert search.suggest("a")["stage"] == 1
    with pytest.raises(RuntimeError):
        TwoStageSearch(layers=[1], units=[4]).suggest("a")


def test_save_and_restore_are_plain_json(tmp_path):
    search = make_search()
    search.suggest("a")
    search.on_trial_complete("a", {"val_rmse": 2.0, "params": 10})
    path = tmp_path / "searcher.json"
    search.save(str(path))
    state = json.loads(path.read_text())
    assert state["policy"]["trials"][0]["score"] == 2.0
    restored = make_search()
    restored.restore(str(path))
    assert restored.get_state() == search.get_state()
    assert restored.suggest("b")["units"] == 8


def test_works_inside_concurrency_limiter():
    limited = ConcurrencyLimiter(make_search(), max_concurrent=2)
    assert limited.suggest("a")["units"] == 4
    assert limited.suggest("b")["units"] == 8
    assert limited.suggest("c") is None
