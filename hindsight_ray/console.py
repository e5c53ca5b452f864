"""Tune callbacks on the driver: stage-aware progress lines, and when each trial was queued."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ray.tune import Callback

from hindsight_ray.search.policy import TwoStagePolicy, is_better


class TrialClock(Callback):
    """Stamps the moment the driver first sees each trial (queued), whatever the search algorithm."""

    def __init__(self) -> None:
        self.queued_at: dict[str, float] = {}

    def _stamp(self, trials: list[Any]) -> None:
        now = time.time()
        for trial in trials:
            self.queued_at.setdefault(trial.trial_id, now)

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._stamp(trials)

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._stamp(trials)


class StageConsole(Callback):
    """Short lines a person can follow: ``stage 1: 5/8 done, best ...`` and ``stage 2: iteration 2/5 ...``.

    Reads the two-stage policy, which Tune tells about a finished trial before it calls callbacks.
    """

    def __init__(self, policy: TwoStagePolicy, metric: str, echo: Callable[[str], None] = print) -> None:
        self.policy, self.metric, self.echo = policy, metric, echo

    def _ended(self, trial: Any) -> None:
        policy = self.policy
        if trial.config.get("stage") == 2:
            path = policy.learning_rate_path()
            step = next((s for s in path if s["trial_id"] == trial.trial_id), None)
            if step is None:
                return
            shown = "failed" if step["score"] is None else f"{self.metric}={step['score']:.4g}"
            self.echo(f"stage 2: iteration {step['iteration']}/{policy.iterations} lr={step['learning_rate']:.6g} "
                      f"{shown}{' (improved)' if step['improved'] else ''}")
            return
        ended = [t for t in policy.stage1_trials() if t.status != "running"]
        leader = None
        for record in ended:
            if is_better(record.score, None if leader is None else leader.score, policy.mode):
                leader = record
        best = "none yet" if leader is None else (
            f"units={leader.units} layers={leader.layers} {self.metric}={leader.score:.4g}")
        failed = sum(t.status == "error" for t in ended)
        note = f" ({failed} failed)" if failed else ""
        self.echo(f"stage 1: {len(ended)}/{len(policy.grid)} done{note}, best {best}")

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(trial)
