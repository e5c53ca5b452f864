"""A policy rebuilt from the trials Ray recorded decides exactly as the one that was lost."""

from __future__ import annotations

import pytest

from hindsight_ray.search.policy import FINISHED, WAIT, TwoStagePolicy, TwoStageSettings
from hindsight_ray.search.rebuild import InconsistentTrials, RecordedTrial, rebuild_policy

SETTINGS = {"layers": [1, 2], "units": [4, 8], "stage1_learning_rate": 0.001, "stage1_epochs": 3,
            "max_learning_rate": 0.02, "max_iterations": 9, "stage2_epochs": 5}


def score(config: dict) -> float:
    """A deterministic validation score with a minimum near lr 0.006 for (2, 8)."""
    return (3 - config["layers"]) + 8 / config["units"] + abs(config["learning_rate"] - 0.006) * 100


def recorded(policy: TwoStagePolicy) -> list[RecordedTrial]:
    """The policy's trials as Ray's snapshot would list them."""
    status = {"done": "TERMINATED", "error": "ERROR", "stopped": "TERMINATED", "running": "RUNNING",
              "stopping": "RUNNING"}
    out = []
    for record in policy.stage1_trials() + policy.stage2_trials():
        config = {"stage": record.stage, "layers": record.layers, "units": record.units,
                  "learning_rate": record.learning_rate, "epochs": record.epochs}
        last = {} if record.status in ("running", "stopping") else {
            "score": record.score, "params": record.params,
            "epoch": record.epochs if record.status != "stopped" else 1}
        out.append(RecordedTrial(record.trial_id, config, status[record.status], last))
    return sorted(out, key=lambda t: policy.trials[t.trial_id].order)


class Driver:
    """Tune's part, deterministic: suggest up to ``slots`` trials, complete the oldest running one."""

    def __init__(self, slots: int) -> None:
        self.slots, self.count = slots, 0

    def step(self, policy: TwoStagePolicy) -> bool:
        running = [t for t in policy.trials.values() if t.status in ("running", "stopping")]
        while len(running) < self.slots:
            self.count += 1
            decision = policy.suggest(f"t{self.count:03d}")
            if decision in (WAIT, FINISHED):
                break
            running = [t for t in policy.trials.values() if t.status in ("running", "stopping")]
        if not running:
            return False
        oldest = min(running, key=lambda t: t.order)
        config = {"layers": oldest.layers, "units": oldest.units, "learning_rate": oldest.learning_rate}
        failed = oldest.layers == 1 and oldest.units == 4  # one stage-1 trial errors: it counts as the worst
        policy.complete(oldest.trial_id, None if failed else score(config), params=oldest.layers * oldest.units)
        for trial in list(policy.trials.values()):
            policy.stop_if_unneeded(trial.trial_id)
        return True


def run_to_end(policy: TwoStagePolicy, driver: Driver) -> TwoStagePolicy:
    while driver.step(policy):
        pass
    return policy


def decisions(policy: TwoStagePolicy) -> tuple:
    return ((policy.winner.layers, policy.winner.units), [(s["learning_rate"], s["score"]) for s in
            policy.learning_rate_path()], policy.best().learning_rate)


@pytest.mark.parametrize("speculative", [False, True])
def test_a_policy_rebuilt_at_any_point_reaches_the_same_decisions(speculative):
    settings = {**SETTINGS, "speculative": speculative}
    whole = run_to_end(TwoStagePolicy(**settings, mode="min"), Driver(slots=3))
    checked = 0
    for steps in range(1, 60):
        policy, driver = TwoStagePolicy(**settings, mode="min"), Driver(slots=3)
        for _ in range(steps):
            driver.step(policy)
        if policy.finished:
            break
        rebuilt = rebuild_policy(TwoStageSettings.from_dict(settings), "min", "score", recorded(policy))
        assert len(rebuilt.trials) == len(policy.trials) and rebuilt.winner_id == policy.winner_id
        assert decisions(run_to_end(rebuilt, driver)) == decisions(whole), f"rebuilt after {steps} steps"
        checked += 1
    assert checked > 6  # the cut points covered stage 1, the barrier and stage 2


def test_stage2_trials_of_another_architecture_are_refused():
    policy = run_to_end(TwoStagePolicy(**SETTINGS, mode="min"), Driver(slots=2))
    trials = recorded(policy)
    wrong = next(t for t in trials if t.config["stage"] == 2)
    trials[trials.index(wrong)] = RecordedTrial(wrong.trial_id, {**wrong.config, "units": 4}, wrong.status,
                                                wrong.last_result)
    with pytest.raises(InconsistentTrials, match="do not tune the stage-1 winner"):
        rebuild_policy(TwoStageSettings.from_dict(SETTINGS), "min", "score", trials)


def test_a_grid_point_outside_the_settings_is_refused():
    trial = RecordedTrial("a", {"stage": 1, "layers": 3, "units": 4, "learning_rate": 0.001, "epochs": 3},
                          "TERMINATED", {"score": 1.0, "epoch": 3})
    with pytest.raises(InconsistentTrials, match="not in the configured grid"):
        rebuild_policy(TwoStageSettings.from_dict(SETTINGS), "min", "score", [trial])
