"""Anytime curves and the time to come within 1% of the final best (pure functions)."""

from __future__ import annotations

import pandas as pd

from hindsight_ray.report import anytime, seconds_to_within, summary_markdown


def trials(scores, seconds, finished):
    return pd.DataFrame({"val_rmse": scores, "total_s": seconds, "finished_at": finished})


def test_anytime_is_best_so_far_over_cumulative_trial_seconds():
    curve = anytime(trials([5.0, None, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [10, 11, 13, 12]), "val_rmse", "min")
    # ordered by finishing time: 5.0 (1 s), failed (2 s), 4.0 (4 s), 3.0 (3 s)
    assert curve.trial_s.tolist() == [1.0, 3.0, 7.0, 10.0]
    assert curve.best.tolist() == [5.0, 5.0, 4.0, 3.0]
    assert anytime(trials([0.7, 0.9], [1.0, 1.0], [1, 2]), "val_rmse", "max").best.tolist() == [0.7, 0.9]


def test_seconds_to_within_one_percent():
    curve = pd.DataFrame({"trial_s": [1.0, 3.0, 7.0, 10.0], "best": [5.0, 5.0, 3.02, 3.0]})
    assert seconds_to_within(curve, 3.0, "min") == 7.0  # 3.02 is within 1% of 3.0
    assert seconds_to_within(curve, 3.0, "min", tolerance=0.001) == 10.0
    assert seconds_to_within(curve, None, "min") is None


def test_markdown_table():
    text = summary_markdown(pd.DataFrame({"a": ["x"], "b": [1.23456]}))
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x | 1.235 |"]
