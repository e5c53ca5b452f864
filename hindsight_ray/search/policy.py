"""The two-stage decisions as a pure state machine: no Ray, no TensorFlow, JSON state.

Stage 1 scans the architecture grid ``layers x units`` at a fixed learning rate, all trials
at once. A barrier waits for every stage-1 trial to end (errored ones count as the worst
score); the winner is the best validation score, ties going to fewer parameters. Stage 2
then tunes the winner's learning rate one trial at a time with the halving/bisection rule:

    K = isqrt(max_iterations) + 1
    lr = max_learning_rate
    for each of K trials: improved = first trial or better than the previous trial
                          lr = lr / 2 if improved else (max_learning_rate + lr) / 2
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

WAIT: Literal["wait"] = "wait"
FINISHED: Literal["finished"] = "finished"

STATE_VERSION = 1


def stage2_iterations(max_iterations: int) -> int:
    """K, the number of stage-2 trials: the notebook's ``int(exp(log(n)/2)) + 1`` without its float error."""
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be at least 1, got {max_iterations}")
    return math.isqrt(max_iterations) + 1


def next_learning_rate(learning_rate: float, max_learning_rate: float, improved: bool) -> float:
    """Halve after an improvement, else bisect back towards the maximum."""
    return learning_rate / 2 if improved else (max_learning_rate + learning_rate) / 2


def architecture_grid(layers: list[int], units: list[int]) -> list[tuple[int, int]]:
    """Every (layers, units) pair, depth-major, in the order given."""
    return [(depth, width) for depth in layers for width in units]


def is_better(score: float | None, other: float | None, mode: str) -> bool:
    """True when ``score`` strictly beats ``other``; a missing score (failed trial) is the worst."""
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return False
    if other is None or (isinstance(other, float) and math.isnan(other)):
        return True
    return score < other if mode == "min" else score > other


@dataclass(frozen=True)
class Suggestion:
    """One trial to run: its stage and hyperparameters."""

    stage: int
    layers: int
    units: int
    learning_rate: float
    epochs: int

    def as_config(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrialRecord:
    """What the policy knows of one suggested trial."""

    trial_id: str
    stage: int
    layers: int
    units: int
    learning_rate: float
    epochs: int
    order: int
    status: str = "running"  # running | done | error
    score: float | None = None
    params: int | None = None


class TwoStagePolicy:
    """Decides what to try next; told what happened; knows nothing of Ray."""

    def __init__(
        self,
        *,
        layers: list[int],
        units: list[int],
        stage1_learning_rate: float,
        stage1_epochs: int,
        max_learning_rate: float,
        max_iterations: int,
        stage2_epochs: int,
        mode: str,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if not layers or not units:
            raise ValueError("the stage-1 grid needs at least one layers value and one units value")
        if stage1_learning_rate <= 0 or max_learning_rate <= 0:
            raise ValueError("learning rates must be positive")
        self.settings: dict[str, Any] = {
            "layers": list(layers),
            "units": list(units),
            "stage1_learning_rate": float(stage1_learning_rate),
            "stage1_epochs": int(stage1_epochs),
            "max_learning_rate": float(max_learning_rate),
            "max_iterations": int(max_iterations),
            "stage2_epochs": int(stage2_epochs),
            "mode": mode,
        }
        self.grid = architecture_grid(self.settings["layers"], self.settings["units"])
        self.iterations = stage2_iterations(self.settings["max_iterations"])
        self.trials: dict[str, TrialRecord] = {}
        self.next_grid_index = 0
        self.requeued: list[int] = []  # grid points whose trial was lost before Tune recorded it
        self.winner_id: str | None = None
        self.next_stage2_lr = self.settings["max_learning_rate"]
        self.finished = False

    # -- what the adapter asks ---------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.settings["mode"]

    @property
    def total_trials(self) -> int:
        """Stage-1 grid size plus K stage-2 trials (fewer if stage 1 fails entirely)."""
        return len(self.grid) + self.iterations

    @property
    def stage(self) -> int:
        """1 while the grid runs or the barrier holds, 2 while learning rates are tried, 0 when finished."""
        if self.finished:
            return 0
        return 2 if self.winner_id is not None else 1

    def suggest(self, trial_id: str) -> Suggestion | Literal["wait", "finished"]:
        """The next trial to run, ``WAIT`` (not now), or ``FINISHED``."""
        if trial_id in self.trials:
            raise ValueError(f"trial {trial_id} was already suggested")
        if self.finished:
            return FINISHED
        if self.requeued or self.next_grid_index < len(self.grid):
            if self.requeued:
                depth, width = self.grid[self.requeued.pop(0)]
            else:
                depth, width = self.grid[self.next_grid_index]
                self.next_grid_index += 1
            return self._start(trial_id, Suggestion(1, depth, width, self.settings["stage1_learning_rate"],
                                                    self.settings["stage1_epochs"]))
        if self.winner_id is None:
            if self._running(stage=1):
                return WAIT  # the barrier: every stage-1 trial must end first
            self.winner_id = self._choose_winner()
            if self.winner_id is None:
                self.finished = True  # every stage-1 trial failed: nothing to tune
                return FINISHED
        if self._running(stage=2):
            return WAIT  # stage 2 is sequential
        if len(self.stage2_trials()) >= self.iterations:
            self.finished = True
            return FINISHED
        winner = self.trials[self.winner_id]
        return self._start(trial_id, Suggestion(2, winner.layers, winner.units, self.next_stage2_lr,
                                                self.settings["stage2_epochs"]))

    def complete(self, trial_id: str, score: float | None, params: int | None = None) -> None:
        """Record a trial's end: its validation score, or None when it failed for good."""
        record = self.trials.get(trial_id)
        if record is None or record.status != "running":
            return  # not ours, or already told (Tune may report an errored trial twice)
        record.status = "error" if score is None else "done"
        record.score = None if score is None else float(score)
        record.params = params if params is None else int(params)
        if record.stage == 2:
            previous = [t for t in self.stage2_trials() if t.order < record.order]
            improved = not previous or is_better(record.score, previous[-1].score, self.mode)
            self.next_stage2_lr = next_learning_rate(record.learning_rate, self.settings["max_learning_rate"], improved)

    def forget(self, trial_id: str) -> None:
        """Drop a suggested trial that never ran (lost in a crash before Tune recorded it): suggest it again."""
        record = self.trials.pop(trial_id, None)
        if record is None or record.status != "running":
            if record is not None:
                self.trials[trial_id] = record  # finished trials are facts, never forgotten
            return
        if record.stage == 1:
            self.requeued.append(self.grid.index((record.layers, record.units)))
        for order, trial in enumerate(self._ordered()):
            trial.order = order

    # -- results -----------------------------------------------------------------------
    def stage1_trials(self) -> list[TrialRecord]:
        return [t for t in self._ordered() if t.stage == 1]

    def stage2_trials(self) -> list[TrialRecord]:
        return [t for t in self._ordered() if t.stage == 2]

    @property
    def winner(self) -> TrialRecord | None:
        return None if self.winner_id is None else self.trials[self.winner_id]

    def learning_rate_path(self) -> list[dict[str, Any]]:
        """Stage 2 as it happened: learning rate, score, and whether it improved on the trial before."""
        path: list[dict[str, Any]] = []
        for index, trial in enumerate(self.stage2_trials()):
            improved = None
            if trial.status != "running":
                improved = index == 0 or is_better(trial.score, path[-1]["score"], self.mode)
            path.append({"iteration": index + 1, "trial_id": trial.trial_id, "learning_rate": trial.learning_rate,
                         "score": trial.score, "improved": improved})
        return path

    def best(self) -> TrialRecord | None:
        """The best trial of the whole sweep by validation score; ties go to the earlier trial."""
        best: TrialRecord | None = None
        for trial in self._ordered():
            if trial.status == "done" and (best is None or is_better(trial.score, best.score, self.mode)):
                best = trial
        return best

    # -- JSON state --------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "settings": dict(self.settings),
            "trials": [asdict(t) for t in self._ordered()],
            "next_grid_index": self.next_grid_index,
            "requeued": list(self.requeued),
            "winner_id": self.winner_id,
            "next_stage2_lr": self.next_stage2_lr,
            "finished": self.finished,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TwoStagePolicy:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported two-stage state version {state.get('version')!r}")
        policy = cls(**state["settings"])
        policy.trials = {t["trial_id"]: TrialRecord(**t) for t in state["trials"]}
        policy.next_grid_index = int(state["next_grid_index"])
        policy.requeued = [int(i) for i in state.get("requeued", [])]
        policy.winner_id = state["winner_id"]
        policy.next_stage2_lr = float(state["next_stage2_lr"])
        policy.finished = bool(state["finished"])
        return policy

    # -- internals ---------------------------------------------------------------------
    def _start(self, trial_id: str, suggestion: Suggestion) -> Suggestion:
        self.trials[trial_id] = TrialRecord(trial_id=trial_id, order=len(self.trials), **suggestion.as_config())
        return suggestion

    def _ordered(self) -> list[TrialRecord]:
        return sorted(self.trials.values(), key=lambda t: t.order)

    def _running(self, stage: int) -> bool:
        return any(t.stage == stage and t.status == "running" for t in self.trials.values())

    def _choose_winner(self) -> str | None:
        winner: TrialRecord | None = None
        for trial in self.stage1_trials():
            if trial.status != "done" or trial.score is None or math.isnan(trial.score):
                continue
            if winner is None or is_better(trial.score, winner.score, self.mode) or (
                trial.score == winner.score and (trial.params or 0) < (winner.params or 0)
            ):
                winner = trial
        return None if winner is None else winner.trial_id
