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

from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Literal

from hindsight_ray.core.objective import finite, is_better
from hindsight_ray.search.rules import (
    architecture_grid,
    decided_path,
    next_learning_rate,
    stage2_iterations,
)

if TYPE_CHECKING:
    from hindsight_ray.config.schema import SweepConfig

WAIT: Literal["wait"] = "wait"
FINISHED: Literal["finished"] = "finished"

# 3: trials as columns (fields once, a row per trial); 2 (a dict per trial) still loads
STATE_VERSION = 3


@dataclass(frozen=True)
class TwoStageSettings:
    """What a two-stage search is asked to do: the stage-1 grid and epochs, the stage-2 rule's bounds.

    The one list of these settings: ``TwoStageSearch`` takes them as arguments, a sweep's config gives
    them (:meth:`from_config`), and :meth:`policy` makes the state machine that follows them."""

    layers: tuple[int, ...]
    units: tuple[int, ...]
    stage1_learning_rate: float = 0.001
    stage1_epochs: int = 20
    max_learning_rate: float = 0.02
    max_iterations: int = 16
    stage2_epochs: int = 50
    speculative: bool = False

    @classmethod
    def from_config(cls, config: SweepConfig, slots: int) -> TwoStageSettings:
        """The settings of ``config``'s search, speculation as ``slots`` trial slots allow it."""
        from hindsight_ray.config.schema import speculative_for

        stage1, stage2 = config.search.stage1, config.search.stage2
        return cls(
            layers=tuple(stage1.layers),
            units=tuple(stage1.units),
            stage1_learning_rate=stage1.learning_rate,
            stage1_epochs=stage1.epochs,
            max_learning_rate=stage2.max_learning_rate,
            max_iterations=stage2.max_iterations,
            stage2_epochs=stage2.epochs,
            speculative=speculative_for(stage2.speculative, slots, config.resources),
        )

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> TwoStageSettings:
        """Settings saved by :meth:`as_dict` (a ``mode`` beside them is not a setting: it is dropped)."""
        names = {f.name for f in fields(cls)}
        kept = {k: v for k, v in settings.items() if k in names}
        return cls(**{**kept, "layers": tuple(kept["layers"]), "units": tuple(kept["units"])})

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON: lists, numbers and a bool."""
        return {**asdict(self), "layers": list(self.layers), "units": list(self.units)}

    def policy(self, mode: str) -> TwoStagePolicy:
        """A fresh policy that follows these settings towards ``mode`` ("min" or "max")."""
        return TwoStagePolicy(
            layers=list(self.layers),
            units=list(self.units),
            stage1_learning_rate=self.stage1_learning_rate,
            stage1_epochs=self.stage1_epochs,
            max_learning_rate=self.max_learning_rate,
            max_iterations=self.max_iterations,
            stage2_epochs=self.stage2_epochs,
            mode=mode,
            speculative=self.speculative,
        )


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


class RecordStatus(StrEnum):
    """Where the policy stands with one suggested trial (plain strings in its JSON state)."""

    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    # speculative and no longer needed: asked to stop, not yet ended
    STOPPING = "stopping"
    # ended before its last epoch, or an unused speculative trial: never a result
    STOPPED = "stopped"


LIVE = (RecordStatus.RUNNING, RecordStatus.STOPPING)
ENDED = (RecordStatus.DONE, RecordStatus.ERROR)


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
    # running | done | error | stopping | stopped (an unused speculative trial)
    status: str = RecordStatus.RUNNING
    score: float | None = None
    params: int | None = None
    # suggested before the decision that needs it was known
    speculative: bool = False


TRIAL_FIELDS = tuple(f.name for f in fields(TrialRecord))
_record_row = attrgetter(*TRIAL_FIELDS)


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
        speculative: bool = False,
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
            "speculative": bool(speculative),
        }
        self.grid = architecture_grid(self.settings["layers"], self.settings["units"])
        self.iterations = stage2_iterations(self.settings["max_iterations"])
        self.trials: dict[str, TrialRecord] = {}
        self.next_grid_index = 0
        # grid points whose trial was lost before Tune recorded it
        self.requeued: list[int] = []
        self.winner_id: str | None = None
        self.finished = False

    # -- what the adapter asks ---------------------------------------------------------
    @property
    def mode(self) -> str:
        return str(self.settings["mode"])

    @property
    def total_trials(self) -> int:
        """At most this many trials: the grid plus K stage-2 trials, or plus the whole decision tree
        (2^K - 1 learning rates) when speculating."""
        return len(self.grid) + (
            2**self.iterations - 1 if self.settings["speculative"] else self.iterations
        )

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
            return self._start(
                trial_id,
                Suggestion(
                    1,
                    depth,
                    width,
                    self.settings["stage1_learning_rate"],
                    self.settings["stage1_epochs"],
                ),
            )
        if self.winner_id is None:
            if self._running(stage=1):
                # the barrier: every stage-1 trial must end first
                return WAIT
            self.winner_id = self._choose_winner()
            if self.winner_id is None:
                # every stage-1 trial failed: nothing to tune
                self.finished = True
                return FINISHED
        if len(self._decided()) >= self.iterations:
            self.finished = True
            return FINISHED
        for depth, learning_rate in self._candidates():
            if self._result_for(learning_rate) is None and not self._running_for(learning_rate):
                winner = self.trials[self.winner_id]
                suggestion = Suggestion(
                    2, winner.layers, winner.units, learning_rate, self.settings["stage2_epochs"]
                )
                self._start(trial_id, suggestion, speculative=depth > 0)
                return suggestion
        # stage 2 waits for the trial the next decision needs
        return WAIT

    def complete(
        self, trial_id: str, score: float | None, params: int | None = None, stopped: bool = False
    ) -> None:
        """Record a trial's end: its validation score, or None when it failed for good; ``stopped`` when
        a scheduler cut it short (early stopping): it is recorded, but its partial score never counts."""
        record = self.trials.get(trial_id)
        if record is None or record.status not in LIVE:
            # not ours, or already told (Tune may report an errored trial twice)
            return
        if record.status == RecordStatus.STOPPING or stopped:
            # cut short on purpose: its partial score is never used
            record.status = RecordStatus.STOPPED
            record.score = None if score is None else float(score)
        else:
            record.status = RecordStatus.ERROR if score is None else RecordStatus.DONE
            record.score = None if score is None else float(score)
        record.params = params if params is None else int(params)

    def stop_if_unneeded(self, trial_id: str) -> bool:
        """True once a running speculative trial can no longer matter to the sequential path; it is then
        marked for stopping (its result will be ignored)."""
        record = self.trials.get(trial_id)
        if record is None or record.stage != 2 or record.status != RecordStatus.RUNNING:
            return False
        if record.learning_rate not in {lr for _, lr in self._candidates()}:
            record.status = RecordStatus.STOPPING
            return True
        return False

    def settle_winner(self) -> TrialRecord | None:
        """Choose the stage-1 winner now, as the end of the barrier does (for a policy rebuilt from trials)."""
        self.winner_id = self._choose_winner()
        return self.winner

    def forget(self, trial_id: str) -> None:
        """Drop a suggested trial that never ran (lost in a crash before Tune recorded it): suggest it again."""
        record = self.trials.pop(trial_id, None)
        if record is None or record.status != RecordStatus.RUNNING:
            if record is not None:
                # finished trials are facts, never forgotten
                self.trials[trial_id] = record
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
        """Stage 2 as the sequential rule decided it: learning rate, score, and whether it improved."""
        path = []
        for index, (lr, score, improved) in enumerate(self._decided()):
            # every decided learning rate has a finished trial
            trial = self._result_for(lr)
            path.append(
                {
                    "iteration": index + 1,
                    "trial_id": None if trial is None else trial.trial_id,
                    "learning_rate": lr,
                    "score": score,
                    "improved": improved,
                }
            )
        return path

    def used_trial_ids(self) -> set[str]:
        """Stage-1 trials and the stage-2 trials on the decided path (not unused speculation)."""
        used = {t.trial_id for t in self.stage1_trials()}
        return used | {step["trial_id"] for step in self.learning_rate_path()}

    def best(self) -> TrialRecord | None:
        """The best trial of the sweep by validation score, speculation aside; ties go to the earlier trial."""
        used = self.used_trial_ids()
        best: TrialRecord | None = None
        for trial in self._ordered():
            if (
                trial.trial_id in used
                and trial.status == RecordStatus.DONE
                and (best is None or is_better(trial.score, best.score, self.mode))
            ):
                best = trial
        return best

    # -- JSON state --------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        # one row per trial under the field names given once: a 10,000-trial state saves in a few ms
        rows = [list(_record_row(t)) for t in self._ordered()]
        return {
            "version": STATE_VERSION,
            "settings": dict(self.settings),
            "trials": {"fields": list(TRIAL_FIELDS), "rows": rows},
            "next_grid_index": self.next_grid_index,
            "requeued": list(self.requeued),
            "winner_id": self.winner_id,
            "finished": self.finished,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TwoStagePolicy:
        if state.get("version") not in (2, STATE_VERSION):
            raise ValueError(f"unsupported two-stage state version {state.get('version')!r}")
        policy = cls(**state["settings"])
        trials = state["trials"]
        if isinstance(trials, dict):
            # version 3: columns
            trials = [dict(zip(trials["fields"], row, strict=True)) for row in trials["rows"]]
        policy.trials = {t["trial_id"]: TrialRecord(**t) for t in trials}
        policy.next_grid_index = int(state["next_grid_index"])
        policy.requeued = [int(i) for i in state.get("requeued", [])]
        policy.winner_id = state["winner_id"]
        policy.finished = bool(state["finished"])
        return policy

    # -- internals ---------------------------------------------------------------------
    def _start(
        self, trial_id: str, suggestion: Suggestion, speculative: bool = False
    ) -> Suggestion:
        self.trials[trial_id] = TrialRecord(
            trial_id=trial_id,
            order=len(self.trials),
            speculative=speculative,
            **suggestion.as_config(),
        )
        return suggestion

    def _stage2_at(self, learning_rate: float, statuses: tuple[str, ...]) -> TrialRecord | None:
        for trial in self._ordered():
            if (
                trial.stage == 2
                and trial.status in statuses
                and trial.learning_rate == learning_rate
            ):
                return trial
        return None

    def _result_for(self, learning_rate: float) -> TrialRecord | None:
        """The finished (or failed) stage-2 trial at this learning rate; failures count as the worst score."""
        return self._stage2_at(learning_rate, ENDED)

    def _running_for(self, learning_rate: float) -> bool:
        return self._stage2_at(learning_rate, (RecordStatus.RUNNING,)) is not None

    def _decided(self) -> list[tuple[float, float | None, bool]]:
        results: dict[float, float | None] = {}
        for trial in self._ordered():
            if trial.stage == 2 and trial.status in ENDED:
                results.setdefault(trial.learning_rate, trial.score)
        return decided_path(results, self.settings["max_learning_rate"], self.iterations, self.mode)

    def _candidates(self) -> list[tuple[int, float]]:
        """(depth, learning rate) the next decisions could need, breadth first: the current one (depth 0),
        then, when speculating, both possible next ones, then theirs, up to the last iteration."""
        decided = self._decided()
        if self.finished or self.winner_id is None or len(decided) >= self.iterations:
            return []
        current = (
            next_learning_rate(decided[-1][0], self.settings["max_learning_rate"], decided[-1][2])
            if decided
            else self.settings["max_learning_rate"]
        )
        # decisions left after the current one
        levels = self.iterations - len(decided) - 1
        out = [(0, current)]
        if not self.settings["speculative"]:
            return out
        maximum = self.settings["max_learning_rate"]
        # (learning rate, its iteration index)
        frontier = [(current, len(decided))]
        for depth in range(1, levels + 1):
            # the first trial always counts as an improvement, so it has one possible successor
            frontier = [
                (child, index + 1)
                for lr, index in frontier
                for child in ((lr / 2,) if index == 0 else (lr / 2, (maximum + lr) / 2))
            ]
            out += [(depth, lr) for lr, _ in frontier]
        return out

    def _ordered(self) -> list[TrialRecord]:
        return sorted(self.trials.values(), key=lambda t: t.order)

    def _running(self, stage: int) -> bool:
        return any(t.stage == stage and t.status in LIVE for t in self.trials.values())

    def _choose_winner(self) -> str | None:
        winner: TrialRecord | None = None
        for trial in self.stage1_trials():
            if trial.status != RecordStatus.DONE or not finite(trial.score):
                continue
            if (
                winner is None
                or is_better(trial.score, winner.score, self.mode)
                or (trial.score == winner.score and (trial.params or 0) < (winner.params or 0))
            ):
                winner = trial
        return None if winner is None else winner.trial_id
