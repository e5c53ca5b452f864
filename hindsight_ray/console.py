"""Tune callbacks on the driver: stage-aware progress lines, a heartbeat with time left, and when each
trial was queued.

Both keep no state that matters in memory: Tune pickles its callbacks with the experiment and
unpickles them on ``resume``, so what they know comes from the trials Tune passes in, or a file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ray.tune import Callback

from hindsight_ray.objective import SCORE_KEY, Objective, finite
from hindsight_ray.search.policy import decided_path, stopped_early
from hindsight_ray.storage import ExperimentStore

QUEUE_FILE = "queued_at.json"


class TrialClock(Callback):
    """Records the moment the driver first sees each trial (queued) in ``queued_at.json``."""

    def __init__(self, experiment_dir: str) -> None:
        self.experiment_dir = experiment_dir
        self.stamps: dict[str, float] | None = None

    def _stamp(self, trials: list[Any]) -> None:
        if self.stamps is None:  # first use, or first use after Tune unpickled us on resume
            self.stamps = read_queue_times(self.experiment_dir)
        fresh = [t.trial_id for t in trials if t.trial_id not in self.stamps]
        if not fresh:
            return
        now = time.time()
        self.stamps.update({trial_id: now for trial_id in fresh})
        ExperimentStore(self.experiment_dir).write_json(QUEUE_FILE, self.stamps)

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._stamp(trials)

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._stamp(trials)

    def __getstate__(self) -> dict[str, Any]:
        return {"experiment_dir": self.experiment_dir, "stamps": None}


def read_queue_times(experiment_dir: str) -> dict[str, float]:
    """trial_id -> the first time the driver saw it, kept across resumes."""
    store = ExperimentStore(experiment_dir)
    return store.read_json(QUEUE_FILE) if store.exists(QUEUE_FILE) else {}


class StageConsole(Callback):
    """Short lines a person can follow: ``stage 1: 5/8 done, best ...`` and ``stage 2: iteration 2/5 ...``."""

    def __init__(self, objective: Objective, stage1_trials: int, stage2_trials: int, max_learning_rate: float,
                 echo: Callable[[str], None] = print) -> None:
        self.objective, self.echo = objective, echo
        self.metric, self.mode = objective.metric, objective.mode
        self.totals = {1: stage1_trials, 2: stage2_trials}
        self.max_learning_rate = max_learning_rate

    def _score(self, trial: Any) -> float | None:
        result = trial.last_result or {}
        if trial.status == "ERROR" or stopped_early(result, trial.config.get("epochs", 0)):
            return None  # failed, or stopped early (ASHA, a budget, an unused speculative trial)
        score = result.get(SCORE_KEY)  # the trial's score by search.score, not merely its last epoch
        return None if score is None else finite(float(score))

    def _leader(self, trials: list[Any]) -> Any:
        leader = None
        for other in trials:
            if self.objective.better(self._score(other), None if leader is None else self._score(leader)):
                leader = other
        return leader

    def _ended(self, trials: list[Any], trial: Any) -> None:
        ended = [t for t in trials if t.status in ("TERMINATED", "ERROR") or t is trial]
        stage = trial.config.get("stage")
        mine = [t for t in ended if t.config.get("stage") == stage]
        if stage is None:  # another strategy: one line per trial
            leader = self._leader(mine)
            best = "none yet" if leader is None else (
                f"layers={leader.config['layers']} units={leader.config['units']} "
                f"lr={leader.config['learning_rate']:.4g} {self.metric}={self._score(leader):.4g}")
            unscored = sum(self._score(t) is None for t in mine)
            self.echo(f"{len(mine)} trials done ({unscored} stopped or failed), best {best}")
        elif stage == 1:
            leader = self._leader(mine)
            best = "none yet" if leader is None else (
                f"units={leader.config['units']} layers={leader.config['layers']} "
                f"{self.metric}={self._score(leader):.4g}")
            failed = sum(self._score(t) is None for t in mine)
            note = f" ({failed} failed)" if failed else ""
            self.echo(f"stage 1: {len(mine)}/{self.totals[1]} done{note}, best {best}")
        elif stage == 2:
            results: dict[float, float | None] = {}
            for other in sorted(mine, key=lambda t: (t.last_result or {}).get("started_at") or 0):
                results.setdefault(other.config["learning_rate"], self._score(other))
            path = decided_path(results, self.max_learning_rate, self.totals[2], self.mode)
            learning_rate = trial.config["learning_rate"]
            if learning_rate not in [lr for lr, _, _ in path]:
                self.echo(f"stage 2: speculative lr={learning_rate:.6g} ended; path decided so far "
                          f"{len(path)}/{self.totals[2]}")
                return
            for index, (lr, score, improved) in enumerate(path):
                if lr == learning_rate:
                    shown = "failed" if score is None else f"{self.metric}={score:.4g}"
                    self.echo(f"stage 2: iteration {index + 1}/{self.totals[2]} lr={lr:.6g} "
                              f"{shown}{' (improved)' if improved else ''}")

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(trials, trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(trials, trial)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress(Callback):
    """A heartbeat while trials run, at most every ``every`` seconds: elapsed time, trials done, running
    (with their epochs) and queued per stage, the best score so far, and an estimate of the time left
    from the observed seconds per trial-epoch."""

    def __init__(self, objective: Objective, *, stage_epochs: dict[int, tuple[int, int]], slots: int,
                 echo: Callable[[str], None] = print, every: float = 10.0) -> None:
        self.objective, self.echo, self.every, self.slots = objective, echo, every, max(1, slots)
        self.stage_epochs = stage_epochs  # stage -> (trials, epochs each); stage 0: any other strategy
        self.started: float | None = None
        self.last = 0.0

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        now = time.monotonic()
        if self.started is None:
            self.started = self.last = now
            return
        if now - self.last >= self.every:
            self.last = now
            self.echo(self.line(trials, now - self.started))

    def line(self, trials: list[Any], elapsed: float) -> str:
        parts, best, seconds, trained = [], None, [], {}
        for stage in sorted({t.config.get("stage", 0) or 0 for t in trials}):
            mine = [t for t in trials if (t.config.get("stage", 0) or 0) == stage]
            done = sum(t.status in ("TERMINATED", "ERROR") for t in mine)
            running = [t for t in mine if t.status == "RUNNING"]
            queued = sum(t.status in ("PENDING", "PAUSED") for t in mine)
            shown = ", ".join(f"{t.config.get('layers')}x{t.config.get('units')} "
                              f"{(t.last_result or {}).get('epoch', 0)}/{t.config.get('epochs')}" for t in running[:4])
            label = f"stage {stage}: " if stage else ""
            total = self.stage_epochs.get(stage, (len(mine), 0))[0]
            parts.append(f"{label}{done}/{max(total, len(mine))} done, {len(running)} running"
                         f"{f' ({shown})' if shown else ''}, {queued} queued")
            trained[stage] = sum(int((t.last_result or {}).get("epoch", 0)) for t in mine)
        for trial in trials:
            result = trial.last_result or {}
            if result.get("epoch") and result.get("finished_at") and result.get("started_at"):
                # gross seconds per epoch: training plus evaluation, checkpoints and reporting
                seconds.append((float(result["finished_at"]) - float(result["started_at"])) / int(result["epoch"]))
            score = result.get(SCORE_KEY) if trial.status != "ERROR" else None
            if score is not None and self.objective.better(finite(float(score)), best):
                best = finite(float(score))
        shown_best = "none yet" if best is None else f"{self.objective.metric} {best:.4g}"
        return (f"[{_clock(elapsed)}] {'; '.join(parts) or 'starting'} | best {shown_best} | "
                f"left ~{self._left(trained, seconds)}")

    def _left(self, trained: dict[int, int], seconds: list[float]) -> str:
        if not seconds:
            return "?"
        per_epoch = sorted(seconds)[len(seconds) // 2]  # the median trial's seconds per epoch
        left = 0.0
        for stage, (count, epochs) in self.stage_epochs.items():
            remaining = max(0, count * epochs - trained.get(stage, 0))
            left += remaining * per_epoch / (1 if stage == 2 else self.slots)  # stage 2 runs one at a time
        return _clock(left)
