"""TensorBoard curves of a sweep, in ``<experiment>/tensorboard/``: one run per trial named as a person reads it
(``2x64 lr=0.01 #7``), every epoch at its own step (also the epochs Tune got folded into one report), the
sweep's metric first, and the HParams view (each trial's hyperparameters against its score).

Ray Tune's own TensorBoard files (one per trial folder) log a step per report, name runs by trial folder
and sort ``ray/tune/*`` cards alphabetically; ``tensorboard --logdir <experiment>/tensorboard`` shows these.
Events are written with tensorboardX's plain writer, on Tune's loop (appending a few records to a local
file, flushed at each report): no thread, no exit hook. The curves are an extra: a write that fails
(a full disk) turns them off for the rest of the run, and costs the sweep nothing.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

from ray.tune import Callback

from hindsight_ray.reporting.mlflow_tracking import epoch_metrics, run_name

FOLDER = "tensorboard"
# {trial_id: run folder name}, so that a resumed trial writes on in its own run
RUNS_FILE = "runs.json"
HPARAMS = ("stage", "layers", "units", "learning_rate", "epochs")


def tag(name: str, metric: str) -> str:
    """The card a metric goes on: groups sort by name, so the sweep's metric comes first."""
    if name == metric:
        return f"1_score/{name}"
    if name.startswith("val_"):
        return f"2_validation/{name}"
    if name.endswith("_s"):
        return f"4_seconds/{name}"
    return f"3_training/{name}"


class TensorBoardWriter(Callback):
    """A Tune callback writing the sweep's TensorBoard runs (see the module); local experiment folders only."""

    def __init__(self, experiment_dir: str, metric: str, mode: str) -> None:
        self.root = os.path.join(experiment_dir, FOLDER)
        self.metric, self.mode = metric, mode
        self._reset()

    def _reset(self) -> None:
        self._writers: dict[str, Any] = {}
        self._logged: dict[str, int] = {}
        self._best: dict[str, float] = {}
        # why the curves stopped being written
        self.broken: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        # pickled with the Tuner: no open files
        return {"root": self.root, "metric": self.metric, "mode": self.mode}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def _runs(self) -> dict[str, str]:
        try:
            with open(os.path.join(self.root, RUNS_FILE), encoding="utf-8") as handle:
                return dict(json.load(handle))
        except (OSError, ValueError):
            return {}

    def _writer(self, trial: Any) -> Any:
        writer = self._writers.get(trial.trial_id)
        if writer is not None:
            return writer
        from tensorboardX.event_file_writer import EventsWriter

        runs = self._runs()
        name = runs.get(trial.trial_id) or run_name(trial.config, len(runs) + 1)
        if trial.trial_id not in runs:
            os.makedirs(self.root, exist_ok=True)
            runs[trial.trial_id] = name
            path = os.path.join(self.root, RUNS_FILE)
            with open(f"{path}.tmp", "w", encoding="utf-8") as handle:
                json.dump(runs, handle)
            os.replace(f"{path}.tmp", path)
        os.makedirs(os.path.join(self.root, name), exist_ok=True)
        writer = EventsWriter(os.path.join(self.root, name, "events"))
        self._writers[trial.trial_id] = writer
        return writer

    def _guarded(self, work: Any) -> None:
        """``work()``, unless the curves are off; an OSError (a full disk) turns them off for good."""
        if self.broken is not None:
            return
        try:
            work()
        except OSError as exc:
            self.broken = f"{type(exc).__name__}: {exc}"
            self._close_all()

    def _close_all(self) -> None:
        for writer in self._writers.values():
            try:
                writer.close()
            except OSError:
                pass
        self._writers.clear()

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ):
        self._guarded(lambda: self._result(trial, result))

    def _result(self, trial: Any, result: dict[str, Any]) -> None:
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.summary import scalar

        last = self._logged.get(trial.trial_id, 0)
        epochs = [(epoch, values) for epoch, values in epoch_metrics(result) if epoch > last]
        if not epochs:
            return
        writer, now = self._writer(trial), time.time()
        for epoch, values in epochs:
            for name, value in values.items():
                writer.write_event(
                    Event(wall_time=now, step=epoch, summary=scalar(tag(name, self.metric), value))
                )
            score = values.get(self.metric)
            if score is not None:
                best = self._best.get(trial.trial_id)
                better = best is None or (score < best if self.mode == "min" else score > best)
                self._best[trial.trial_id] = score if better else best  # type: ignore[assignment]
        self._logged[trial.trial_id] = epochs[-1][0]
        # TensorBoard shows the curve as it grows
        writer.flush()

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._guarded(lambda: self._complete(trial))

    def _complete(self, trial: Any) -> None:
        writer = self._writers.pop(trial.trial_id, None)
        if writer is None:
            return
        best = self._best.get(trial.trial_id)
        if best is not None and math.isfinite(best):
            from tensorboardX.proto.event_pb2 import Event
            from tensorboardX.summary import hparams, scalar

            chosen = {k: trial.config[k] for k in HPARAMS if k in trial.config}
            key, now = f"hparam/{self.metric}", time.time()
            for summary in hparams(chosen, {key: best}):
                writer.write_event(Event(wall_time=now, summary=summary))
            step = self._logged.get(trial.trial_id, 0)
            writer.write_event(Event(wall_time=now, step=step, summary=scalar(key, best)))
        writer.close()

    on_trial_error = on_trial_complete

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self._close_all()
