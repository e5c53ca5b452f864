"""Which checkpoint folders a resume puts right: the rule alone, on paths."""

from __future__ import annotations

from hindsight_ray.running.checkpoint_repair import checkpoint_index, plan_repair

TRIAL = "bucket/exp/train_lstm_1"


def folder(index: int) -> str:
    return f"{TRIAL}/checkpoint_{index:06d}"


def test_checkpoint_index():
    assert checkpoint_index(folder(12)) == 12 and checkpoint_index(folder(3) + "/") == 3
    assert checkpoint_index(f"{TRIAL}/other") == -1


def test_a_pruned_recorded_checkpoint_is_replaced_by_the_newest_and_unknown_folders_go():
    source, remove = plan_repair(folder(1), [folder(3), folder(2)], exists=False)
    assert source == folder(3) and remove == [folder(3), folder(2)]


def test_a_recorded_checkpoint_that_is_there_stays_and_newer_folders_go():
    source, remove = plan_repair(folder(1), [folder(2), folder(1)], exists=True)
    assert source is None and remove == [folder(2)]


def test_a_trial_without_a_recorded_checkpoint_starts_clean():
    assert plan_repair(None, [folder(0)], exists=False) == (None, [folder(0)])


def test_nothing_newer_nothing_to_do():
    assert plan_repair(folder(4), [folder(4), folder(3)], exists=True) == (None, [])
