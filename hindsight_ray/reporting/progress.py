"""What the console says while a sweep runs, without Ray: the line for each trial that ends
(:class:`StageLines`), the heartbeat with elapsed time and time left (:class:`Heartbeat`), and where the
heartbeat goes (:class:`LiveLine`: redrawn in place on a terminal, a plain line every ``every`` seconds
elsewhere). The Tune callbacks in ``console.py`` pass them Tune's trials; tests pass fakes.

A trial here is anything with ``status``, ``config`` and ``last_result``, as Tune's trials have.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from hindsight_ray.core.objective import SCORE_KEY, Objective, finite
from hindsight_ray.core.trials import TrialState, stopped_early
from hindsight_ray.search.rules import decided_path

Printer = Callable[[str], None]


def say(line: str) -> None:
    """``print`` as it is when called: what an ``echo`` of ``print`` becomes in the callbacks Tune pickles.
    Ray's driver replaces ``builtins.print`` once it has shown a worker's output (its tqdm support), and
    the original ``print`` can then no longer be pickled by name: the sweep would fail as Tune starts."""
    print(line)


def picklable(echo: Printer) -> Printer:
    """``echo``, with the built-in ``print`` (whichever object it is now) replaced by :func:`say`."""
    if (
        getattr(echo, "__module__", None) == "builtins"
        and getattr(echo, "__name__", None) == "print"
    ):
        return say
    return echo


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` past an hour."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class StageLines:
    """Short lines a person can follow: ``stage 1: 5/8 done, best ...`` and ``stage 2: iteration 2/5 ...``."""

    def __init__(
        self, objective: Objective, stage1_trials: int, stage2_trials: int, max_learning_rate: float
    ) -> None:
        self.objective = objective
        self.totals = {1: stage1_trials, 2: stage2_trials}
        self.max_learning_rate = max_learning_rate

    def score(self, trial: Any) -> float | None:
        result = trial.last_result or {}
        if trial.status == TrialState.ERROR or stopped_early(result, trial.config.get("epochs", 0)):
            # failed, or stopped early (ASHA, a budget, an unused speculative trial)
            return None
        # the trial's score by search.score, not merely its last epoch
        score = result.get(SCORE_KEY)
        return None if score is None else finite(float(score))

    def _leader(self, trials: list[Any]) -> Any:
        leader = None
        for other in trials:
            if self.objective.better(
                self.score(other), None if leader is None else self.score(leader)
            ):
                leader = other
        return leader

    def ended(self, trials: list[Any], trial: Any) -> list[str]:
        """The lines to print now that ``trial`` ended (``trials``: every trial Tune knows)."""
        stage = trial.config.get("stage")
        mine = [
            t
            for t in trials
            if (TrialState(t.status).is_finished() or t is trial) and t.config.get("stage") == stage
        ]
        if stage == 2:
            return self._stage2(mine, trial)
        leader, metric = self._leader(mine), self.objective.metric
        unscored = sum(self.score(t) is None for t in mine)
        if stage is None:
            # another strategy: one line per trial
            best = (
                "none yet"
                if leader is None
                else (
                    f"layers={leader.config['layers']} units={leader.config['units']} "
                    f"lr={leader.config['learning_rate']:.4g} {metric}={self.score(leader):.4g}"
                )
            )
            return [f"{len(mine)} trials done ({unscored} stopped or failed), best {best}"]
        best = (
            "none yet"
            if leader is None
            else (
                f"units={leader.config['units']} layers={leader.config['layers']} {metric}={self.score(leader):.4g}"
            )
        )
        note = f" ({unscored} failed)" if unscored else ""
        return [f"stage 1: {len(mine)}/{self.totals[1]} done{note}, best {best}"]

    def _stage2(self, mine: list[Any], trial: Any) -> list[str]:
        """The iterations this trial's end decided (with speculation a trial can end before the one the
        rule needs first; its iteration is printed when that one ends), or a line for a trial off the path."""

        def path(ended: list[Any]) -> list[tuple[float, float | None, bool]]:
            results: dict[float, float | None] = {}
            for other in sorted(ended, key=lambda t: (t.last_result or {}).get("started_at") or 0):
                results.setdefault(other.config["learning_rate"], self.score(other))
            return decided_path(
                results, self.max_learning_rate, self.totals[2], self.objective.mode
            )

        before, now = path([t for t in mine if t is not trial]), path(mine)
        learning_rate = trial.config["learning_rate"]
        if len(now) == len(before):
            # off the path, or ahead of the trial the rule needs first
            return [
                f"stage 2: speculative lr={learning_rate:.6g} ended; path decided so far {len(now)}/{self.totals[2]}"
            ]
        lines = []
        for index, (lr, score, improved) in enumerate(now[len(before) :], start=len(before) + 1):
            shown = "failed" if score is None else f"{self.objective.metric}={score:.4g}"
            lines.append(
                f"stage 2: iteration {index}/{self.totals[2]} lr={lr:.6g} {shown}{' (improved)' if improved else ''}"
            )
        return lines


def _epochs(trial: Any) -> str:
    """A running trial's epochs done of its epochs, or ``starting`` until its first epoch has ended (the
    worker is starting, importing the framework, loading the data and building the model)."""
    epoch = (trial.last_result or {}).get("epoch")
    return f"{epoch}/{trial.config.get('epochs')}" if epoch else "starting"


class Heartbeat:
    """Elapsed time, trials done, running (with their epochs) and queued per stage, the best score so far,
    and the time left from the observed seconds per trial-epoch."""

    def __init__(
        self, objective: Objective, *, stage_epochs: dict[int, tuple[int, int]], slots: int
    ) -> None:
        self.objective, self.slots = objective, max(1, slots)
        # stage -> (trials, epochs each); stage 0: any other strategy
        self.stage_epochs = stage_epochs

    def line(self, trials: list[Any], elapsed: float) -> str:
        parts, trained = [], {}
        for stage in sorted({t.config.get("stage", 0) or 0 for t in trials}):
            mine = [t for t in trials if (t.config.get("stage", 0) or 0) == stage]
            done = sum(TrialState(t.status).is_finished() for t in mine)
            running = [t for t in mine if t.status == TrialState.RUNNING]
            queued = sum(TrialState(t.status).is_waiting() for t in mine)
            shown = ", ".join(
                f"{t.config.get('layers')}x{t.config.get('units')} {_epochs(t)}"
                for t in running[:4]
            )
            label = f"stage {stage}: " if stage else ""
            total = self.stage_epochs.get(stage, (len(mine), 0))[0]
            parts.append(
                f"{label}{done}/{max(total, len(mine))} done, {len(running)} running"
                f"{f' ({shown})' if shown else ''}, {queued} queued"
            )
            trained[stage] = sum(int((t.last_result or {}).get("epoch", 0)) for t in mine)
        best = self._best(trials)
        shown_best = "none yet" if best is None else f"{self.objective.metric} {best:.4g}"
        return (
            f"[{clock(elapsed)}] {'; '.join(parts) or 'starting'} | best {shown_best} | "
            f"left ~{self._left(trained, trials)}"
        )

    def _best(self, trials: list[Any]) -> float | None:
        best = None
        for trial in trials:
            score = (
                (trial.last_result or {}).get(SCORE_KEY)
                if trial.status != TrialState.ERROR
                else None
            )
            if score is not None and self.objective.better(finite(float(score)), best):
                best = finite(float(score))
        return best

    def _left(self, trained: dict[int, int], trials: list[Any]) -> str:
        """Epochs still to train at the median seconds an epoch takes (training, evaluation, its share of
        checkpoints), plus each trial not yet started at the median start-up (data, TensorFlow, the build)."""
        per_epoch, startup = [], []
        for trial in trials:
            result = trial.last_result or {}
            if result.get("epoch") and result.get("epoch_s") is not None:
                per_epoch.append(
                    float(result["epoch_s"])
                    + float(result.get("checkpoint_s") or 0) / int(result["epoch"])
                )
                startup.append(float(result.get("data_s") or 0) + float(result.get("build_s") or 0))
        if not per_epoch:
            return "?"
        epoch_s, start_s = (
            sorted(per_epoch)[len(per_epoch) // 2],
            sorted(startup)[len(startup) // 2],
        )
        left = 0.0
        for stage, (count, epochs) in self.stage_epochs.items():
            started = sum(
                1 for t in trials if (t.config.get("stage", 0) or 0) == stage and t.last_result
            )
            work = (
                max(0, count * epochs - trained.get(stage, 0)) * epoch_s
                + max(0, count - started) * start_s
            )
            # stage 2 runs one at a time
            left += work / (1 if stage == 2 else self.slots)
        return clock(left)


class LiveLine:
    """Where the heartbeat goes. On a terminal: one status line that rich redraws in place (at most
    every ``redraw`` seconds), under the lines printed meanwhile. Elsewhere (CI, a log file, a notebook's
    captured output): a plain line through ``echo`` at most every ``every`` seconds."""

    def __init__(
        self,
        echo: Printer = print,
        *,
        live: bool | None = None,
        every: float = 10.0,
        redraw: float = 1.0,
        console: Any = None,
    ) -> None:
        self.echo, self.every, self.redraw = picklable(echo), every, redraw
        # None: live exactly when printing to a terminal (decided again after a resume)
        self.mode = live
        self.console = console
        self.last: float | None = None
        self._display: Any = None

    def due(self, now: float) -> bool:
        """Whether a new line is due at ``now`` (monotonic seconds); the first call only starts the clock."""
        if self.last is None:
            self.last = now
            return False
        return now - self.last >= (self.redraw if self.live else self.every)

    @property
    def live(self) -> bool:
        return (self.echo is print and sys.stdout.isatty()) if self.mode is None else self.mode

    def show(self, line: str, now: float) -> None:
        self.last = now
        if not self.live:
            self.echo(line)
            return
        from rich.live import Live
        from rich.text import Text

        # one line, cut to the terminal's width
        text = Text(line, no_wrap=True, overflow="ellipsis")
        if self._display is None:
            # transient: the finished sweep leaves only its permanent lines
            self._display = Live(
                text,
                console=self.console,
                transient=True,
                auto_refresh=False,
                redirect_stdout=True,
                redirect_stderr=False,
            )
            self._display.start()
        self._display.update(text, refresh=True)

    def close(self) -> None:
        if self._display is not None:
            self._display.stop()
            self._display = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles callbacks with the experiment
        return {**self.__dict__, "_display": None, "console": None, "last": None}
