"""Tune callbacks on the driver: stage-aware progress lines, a heartbeat with time left (the words are
``progress.py``'s), and when each trial was queued.

Both keep no state that matters in memory: Tune pickles its callbacks with the experiment and
unpickles them on ``resume``, so what they know comes from the trials Tune passes in, or a file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune import Callback, ProgressReporter
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from hindsight_ray.core.experiment import ExperimentStore
from hindsight_ray.core.layout import QUEUE_FILE
from hindsight_ray.core.objective import Objective
from hindsight_ray.reporting.progress import Heartbeat, LiveLine, StageLines, picklable


class NoTuneReporter(ProgressReporter):
    """Tune's own progress report, off: the callbacks here say it. Without one, Tune picks its
    ``JupyterNotebookReporter`` in a notebook, which clears the cell's output (the plan printed above it) and
    leaves an empty HTML display there."""

    def should_report(self, trials: list[Any], done: bool = False) -> bool:
        return False

    def report(self, trials: list[Any], done: bool, *sys_info: str) -> None:
        pass


class TrialClock(Callback):
    """Records the moment the driver first sees each trial (queued) in ``queued_at.json``."""

    def __init__(self, experiment: ExperimentStore) -> None:
        self.experiment = experiment
        self.stamps: dict[str, float] | None = None

    def _stamp(self, trials: list[Any]) -> None:
        if self.stamps is None:
            # first use, or first use after Tune unpickled us on resume
            self.stamps = read_queue_times(self.experiment)
        fresh = [t.trial_id for t in trials if t.trial_id not in self.stamps]
        if not fresh:
            return
        now = time.time()
        self.stamps.update({trial_id: now for trial_id in fresh})
        self.experiment.write_json(QUEUE_FILE, self.stamps)

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._stamp(trials)

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._stamp(trials)

    def __getstate__(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "stamps": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # pickled by a version that kept the folder as a string: the same folder
        self.experiment = ExperimentStore.of(state.get("experiment") or state["experiment_dir"])
        self.stamps = None


def read_queue_times(store: ExperimentStore) -> dict[str, float]:
    """trial_id -> the first time the driver saw it, kept across resumes."""
    return store.read_json(QUEUE_FILE) if store.exists(QUEUE_FILE) else {}


class StageConsole(Callback):
    """Prints :class:`~hindsight_ray.reporting.progress.StageLines` as trials end."""

    def __init__(
        self,
        objective: Objective,
        stage1_trials: int,
        stage2_trials: int,
        max_learning_rate: float,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.lines = StageLines(objective, stage1_trials, stage2_trials, max_learning_rate)
        self.echo = picklable(echo)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        for line in self.lines.ended(trials, trial):
            self.echo(line)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.on_trial_complete(iteration, trials, trial)


class Progress(Callback):
    """The :class:`~hindsight_ray.reporting.progress.Heartbeat` while trials run: a live line on a terminal, else a
    plain line at most every ``every`` seconds."""

    def __init__(
        self,
        objective: Objective,
        *,
        stage_epochs: dict[int, tuple[int, int]],
        slots: int,
        echo: Callable[[str], None] = print,
        every: float = 10.0,
        live: bool | None = None,
    ) -> None:
        self.heartbeat = Heartbeat(objective, stage_epochs=stage_epochs, slots=slots)
        self.output = LiveLine(echo, live=live, every=every)
        self.started: float | None = None

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        if self.output.due(now):
            self.output.show(self.heartbeat.line(trials, now - self.started), now)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.output.close()

    def close(self) -> None:
        self.output.close()

    def __getstate__(self) -> dict[str, Any]:
        # a resumed sweep counts its elapsed time anew
        return {**self.__dict__, "started": None}


class DiskWatch(Callback):
    """Stops the sweep at the first trial that finds the storage full, before Tune spends its retries:
    the experiment stays as Ray last saved it, and ``resume`` goes on once there is space."""

    def __init__(self, experiment_dir: str) -> None:
        self.experiment_dir = experiment_dir

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        from hindsight_ray.core.disk import DISK_FULL_KEY, DiskFull

        if result.get(DISK_FULL_KEY):
            raise DiskFull(
                f"cannot write {self.experiment_dir}: {result[DISK_FULL_KEY]}; free some space, then "
                f"hindsight-ray resume {self.experiment_dir}"
            )


class WarmBackend(Callback):
    """At the first trial result, the import of Keras' backend into the driver begins in the background
    (:func:`~hindsight_ray.running.finalize.warm_backend`), for the test evaluation a local sweep runs there: after
    the first workers' own imports, which every trial start waits for, not beside them."""

    # what an experiment pickled before model.backend existed ran on
    backend = "tensorflow"

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        from hindsight_ray.training.warm import warm_backend

        warm_backend(self.backend)


# its name in the Tuner pickles of experiments begun before model.backend
WarmTensorFlow = WarmBackend


class _KeepsDriverCopy:
    """Ray's result loggers, when a trial starts again after a failure, copy its file from storage over the
    driver's own copy. The storage copy is only as new as the last sync of the driver's files, so the lines
    logged since were lost: a trial moved off a removed node lost epochs 9-10 from ``result.json`` (and from
    the trials table built from it). The driver's copy is kept when it is at least as long; the storage copy
    still comes when the driver has none (a resume in a new Ray session) or an older one."""

    def _restore_from_remote(self, file_name: str, trial: Any) -> None:
        local = Path(trial.local_path, file_name)
        remote = f"{trial.storage.trial_fs_path.rstrip('/')}/{file_name}"
        try:
            info = trial.storage.storage_filesystem.get_file_info(remote)
            kept = local.is_file() and (info.size is None or local.stat().st_size >= info.size)
        except OSError:
            kept = local.is_file()
        if not kept:
            super()._restore_from_remote(file_name, trial)  # type: ignore[misc]


class ResultJsonLogger(_KeepsDriverCopy, JsonLoggerCallback):
    """Tune's ``result.json`` logger, keeping a restarted trial's lines (see :class:`_KeepsDriverCopy`)."""


class ProgressCsvLogger(_KeepsDriverCopy, CSVLoggerCallback):
    """Tune's ``progress.csv`` logger, keeping a restarted trial's lines (see :class:`_KeepsDriverCopy`)."""
