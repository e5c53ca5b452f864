"""When a trial checkpoints (``run.checkpoint_every``): a rule on numbers, no Ray, no TensorFlow."""

from __future__ import annotations


def test_checkpoints_come_every_n_epochs_or_every_so_many_seconds_and_after_the_last():
    from hindsight_ray.trainable import checkpoint_due

    assert [e for e in range(1, 8) if checkpoint_due(e, 7, 3, 0.0, 30.0)] == [3, 6, 7]
    assert [e for e in range(1, 8) if checkpoint_due(e, 7, "auto", 1.0, 30.0)] == [7]  # fast epochs: the last only
    assert checkpoint_due(2, 7, "auto", 30.5, 30.0) and not checkpoint_due(2, 7, "auto", 29.9, 30.0)
