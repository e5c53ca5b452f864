"""The one home of "which score is better" and "a trial's score from its epochs"."""

from __future__ import annotations

import math

import pytest

from hindsight_ray.core.objective import Objective, TrialScore, is_better

# A noisy validation curve of the kind the airline default produced: best at epoch 3, last epoch poor.
CURVE = [50.0, 40.0, 30.9, 44.0, 35.0, 43.8]


def test_best_epoch_takes_the_minimum_and_its_epoch():
    assert Objective("val_rmse", "min").trial_score(CURVE) == TrialScore(30.9, 3, 3)


def test_best_epoch_takes_the_maximum_for_accuracy_and_ties_go_to_the_earlier_epoch():
    score = Objective("val_accuracy", "max").trial_score([0.5, 0.8, 0.7, 0.8])
    assert score == TrialScore(0.8, 2, 2)


def test_last_epoch_is_the_notebooks_rule_but_still_names_the_best_epoch():
    assert Objective("val_rmse", "min", "last_epoch").trial_score(CURVE) == TrialScore(43.8, 6, 3)


def test_mean_last_averages_the_last_k_epochs():
    score = Objective("val_rmse", "min", "mean_last", last_k=3).trial_score(CURVE)
    assert score.value == pytest.approx((44.0 + 35.0 + 43.8) / 3) and score.epoch == 6 and score.best_epoch == 3
    short = Objective("val_rmse", "min", "mean_last", last_k=10).trial_score([4.0, 2.0])
    assert short.value == pytest.approx(3.0)


def test_diverged_epochs_are_never_a_score():
    nan = float("nan")
    assert Objective("val_rmse", "min").trial_score([nan, 5.0, math.inf]) == TrialScore(5.0, 2, 2)
    assert Objective("val_rmse", "min").trial_score([nan, None]) == TrialScore(None, None, None)
    assert Objective("val_rmse", "min", "last_epoch").trial_score([5.0, nan]).value is None
    assert Objective("val_rmse", "min", "mean_last", last_k=2).trial_score([1.0, 5.0, nan]).value is None
    assert Objective("val_rmse", "min").trial_score([]) == TrialScore(None, None, None)


def test_scores_grow_epoch_by_epoch_as_the_trainable_reports_them():
    objective = Objective("val_rmse", "min")
    running = [objective.trial_score(CURVE[: n + 1]).value for n in range(len(CURVE))]
    assert running == [50.0, 40.0, 30.9, 30.9, 30.9, 30.9]


def test_better_best_index_and_keys():
    objective = Objective("val_rmse", "min")
    assert objective.better(1.0, 2.0) and not objective.better(2.0, 2.0) and objective.better(1.0, None)
    assert not objective.better(None, 1.0) and not objective.better(float("nan"), 1.0)
    assert objective.best_index([3.0, None, 1.0, 1.0]) == 2 and objective.best_index([None]) is None
    assert objective.test_key == "test_rmse" and objective.last_key == "last_val_rmse"
    assert Objective("val_accuracy", "max").test_key == "test_accuracy"
    assert is_better(2.0, 1.0, "max") and not is_better(math.inf, 1.0, "min")


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="mode"):
        Objective("val_rmse", "lowest")
    with pytest.raises(ValueError, match="search.score"):
        Objective("val_rmse", "min", "median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="score_last_k"):
        Objective("val_rmse", "min", "mean_last", last_k=0)


def test_the_verdict_says_plainly_when_the_chosen_model_loses_to_a_baseline():
    from hindsight_ray.core.objective import baseline_verdict

    summary = {"best": {"test_rmse": 20.85}, "baselines": {
        "persistence": {"rmse": 52.49}, "seasonal_naive": {"rmse": 46.08},
        "sarima": {"rmse": 15.69, "model": "SARIMA(0,1,1)(0,1,1)12 on log"}, "ets": {"failed": "LinAlgError: x"}}}
    assert baseline_verdict(summary, Objective("val_rmse", "min")) == (
        "WORSE than the best baseline, sarima (SARIMA(0,1,1)(0,1,1)12 on log): test rmse 20.85 against 15.69 "
        "(33% higher)")
    summary["best"]["test_rmse"] = 15.0
    assert baseline_verdict(summary, Objective("val_rmse", "min")).startswith("better than every baseline (the best, "
                                                                              "sarima")
    text = {"best": {"test_accuracy": 0.48}, "baselines": {"majority_class": {"accuracy": 0.5}}}
    assert baseline_verdict(text, Objective("val_accuracy", "max")) == (
        "WORSE than the best baseline, majority class: test accuracy 0.48 against 0.5 (4% lower)")
    assert baseline_verdict({"best": None, "baselines": {}}, Objective("val_rmse", "min")) is None
    assert baseline_verdict({"best": {"test_loss": 1.0}, "baselines": summary["baselines"]},
                            Objective("val_loss", "min")) is None  # no baseline scored on the same metric
