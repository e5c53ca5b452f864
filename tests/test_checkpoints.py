"""When a trial checkpoints (``run.checkpoint_every``) and reports (``run.report_seconds``): rules on numbers,
no Ray, no TensorFlow."""

from __future__ import annotations

import pytest


def test_checkpoints_come_every_n_epochs_or_every_so_many_seconds_and_after_the_last():
    from hindsight_ray.training.trainable import checkpoint_due

    assert [e for e in range(1, 8) if checkpoint_due(e, 7, 3, 0.0, 30.0)] == [3, 6, 7]
    assert [e for e in range(1, 8) if checkpoint_due(e, 7, "auto", 1.0, 30.0)] == [7]  # fast epochs: the last only
    assert checkpoint_due(2, 7, "auto", 30.5, 30.0) and not checkpoint_due(2, 7, "auto", 29.9, 30.0)


@pytest.mark.parametrize(("overrides", "expected"), [
    ([], 0.5),
    (["run.report_seconds=2"], 2.0),
    (["search.budget=100"], 0.0),  # a budget stops on the epoch count: every epoch is told
    (["search.stage1.early_stop=asha"], 0.0),  # ASHA decides at epoch milestones
    (["search.strategy=asha"], 0.0),
    (["search.strategy=random"], 0.0),  # open-ended strategies run under two_stage's budget
    (["search.strategy=grid"], 0.5),
])
def test_epochs_are_told_together_only_where_no_decision_rides_on_each_one(overrides, expected):
    from hindsight_ray.config.schema import load_config
    from hindsight_ray.running.plan import make_plan
    from hindsight_ray.running.runner import report_seconds

    config = load_config(None, overrides)
    assert report_seconds(config, make_plan(config)) == expected
