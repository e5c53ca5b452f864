"""The two-stage decisions rebuilt from the trials Ray recorded, for a resume whose searcher state is damaged,
missing, or behind Ray's (pure: no Ray).

Every decision of the two-stage rule follows from the trials' configs and final scores: the stage-1 grid
points tried, the winner among the finished ones, and the learning-rate path replayed over stage 2's
results. So a lost searcher state loses nothing that Ray kept; trials Ray still runs go on as running.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hindsight_ray.core.trials import TrialState, stopped_early
from hindsight_ray.search.policy import RecordStatus, TrialRecord, TwoStagePolicy, TwoStageSettings

# Ray Tune's trial statuses that mean "ended"; the others (PENDING, RUNNING, PAUSED) go on after a resume


@dataclass(frozen=True)
class RecordedTrial:
    """A trial as Ray's experiment snapshot has it: its config, Tune status and last result."""

    trial_id: str
    config: dict[str, Any]
    status: str
    last_result: dict[str, Any] = field(default_factory=dict)


class InconsistentTrials(ValueError):
    """The recorded trials cannot come from one two-stage search with these settings."""


def rebuild_policy(
    settings: TwoStageSettings, mode: str, metric: str, trials: list[RecordedTrial]
) -> TwoStagePolicy:
    """A policy that has seen ``trials`` (in the order Ray created them) as the original one did."""
    policy = settings.policy(mode)
    seen: list[int] = []
    for order, trial in enumerate(trials):
        record = _record(trial, order, metric)
        if record.stage == 1:
            point = (record.layers, record.units)
            if point not in policy.grid:
                raise InconsistentTrials(
                    f"stage-1 trial {trial.trial_id} ran layers {point[0]} x units {point[1]}, "
                    "which is not in the configured grid"
                )
            seen.append(policy.grid.index(point))
        policy.trials[record.trial_id] = record
    policy.next_grid_index = max(seen) + 1 if seen else 0
    policy.requeued = [index for index in range(policy.next_grid_index) if index not in seen]
    stage2 = policy.stage2_trials()
    if stage2:
        _restore_winner(policy, stage2)
        decided = {step["trial_id"] for step in policy.learning_rate_path()}
        for record in stage2:
            record.speculative = record.trial_id not in decided
    return policy


def _record(trial: RecordedTrial, order: int, metric: str) -> TrialRecord:
    config = trial.config
    if config.get("stage") not in (1, 2):
        raise InconsistentTrials(
            f"trial {trial.trial_id} has no two-stage config (stage {config.get('stage')!r})"
        )
    record = TrialRecord(
        trial_id=trial.trial_id,
        stage=int(config["stage"]),
        layers=int(config["layers"]),
        units=int(config["units"]),
        learning_rate=float(config["learning_rate"]),
        epochs=int(config["epochs"]),
        order=order,
    )
    last = trial.last_result
    if trial.status == TrialState.TERMINATED:
        score = last.get(metric)
        score = None if score is None or not math.isfinite(float(score)) else float(score)
        record.params = None if last.get("params") is None else int(last["params"])
        if stopped_early(last, record.epochs):
            record.status, record.score = RecordStatus.STOPPED, score
        else:
            record.status, record.score = (
                (RecordStatus.ERROR, None) if score is None else (RecordStatus.DONE, score)
            )
    elif trial.status == TrialState.ERROR:
        record.status = RecordStatus.ERROR
    return record


def _restore_winner(policy: TwoStagePolicy, stage2: list[TrialRecord]) -> None:
    """Stage 2 began, so the barrier had held: every grid point ended, and the winner is theirs."""
    if (
        policy.requeued
        or policy.next_grid_index < len(policy.grid)
        or any(t.status == RecordStatus.RUNNING for t in policy.stage1_trials())
    ):
        raise InconsistentTrials(
            "stage-2 trials were recorded before every stage-1 trial had ended"
        )
    winner = policy.settle_winner()
    if winner is None or any((t.layers, t.units) != (winner.layers, winner.units) for t in stage2):
        raise InconsistentTrials("the recorded stage-2 trials do not tune the stage-1 winner")
