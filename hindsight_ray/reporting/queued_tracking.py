"""What the trackers (MLflow, W&B) share: Tune callbacks that only put events on a queue, and one background
thread that hands them, in order, to the tracking service.

Tune calls its callbacks on its event loop, between trial results: a call to a tracking server there (a few
milliseconds to seconds each) holds every trial's next epoch. A service that is slow, down or refuses an event
costs the sweep nothing: the errors are collected and said once at the end.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from typing import Any

from ray.tune import Callback

from hindsight_ray.core.experiment import ExperimentStore
from hindsight_ray.core.trials import FOLDED_KEY, epoch_row

_STOP = object()
TRIAL_TIMERS = ("queue_s", "data_s", "build_s", "train_s", "eval_s", "checkpoint_s", "total_s")


def run_name(config: dict[str, Any], number: int) -> str:
    """A trial's run name a person can read: ``2x64 lr=0.01 #7`` (layers x units, learning rate, its number)."""
    return f"{config.get('layers')}x{config.get('units')} lr={float(config.get('learning_rate', 0)):g} #{number}"


def epoch_metrics(result: dict[str, Any]) -> list[tuple[int, dict[str, float]]]:
    """(epoch, its finite numeric metrics) for every epoch a Tune result carries: the ones folded into it
    (``run.report_seconds``), then its own."""
    folded = result.get(FOLDED_KEY)
    rows = [*(json.loads(folded) if isinstance(folded, str) and folded else []), epoch_row(result)]
    found = []
    for row in rows:
        epoch = row.get("epoch")
        if epoch is None:
            continue
        values = {
            k: float(v)
            for k, v in row.items()
            if k not in ("epoch", "timestamp", "trial_id", "stage")
            and isinstance(v, (int, float))
            and not isinstance(v, bool)
            and math.isfinite(float(v))
        }
        found.append((int(epoch), values))
    return found


def finite_numbers(values: dict[str, Any]) -> dict[str, float]:
    """The entries of ``values`` that are finite numbers (not booleans), as floats."""
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
    }


def sweep_scores(summary: dict[str, Any]) -> dict[str, float]:
    """A finalized sweep's numbers a tracker logs on the sweep: best validation and test scores, each
    baseline's, the wall and the trials' totals."""
    best = summary.get("best") or {}
    scores: dict[str, Any] = {
        f"best_{k}": v for k, v in best.items() if k.startswith(("test_", "validation"))
    }
    scores.update(
        {k: summary[k] for k in ("wall_s", "trial_s", "trial_epochs", "trials_run") if k in summary}
    )
    for name, values in (summary.get("baselines") or {}).items():
        scores.update({f"baseline_{name}_{k}": v for k, v in values.items() if k not in ("fit_s",)})
    return finite_numbers(scores)


class QueuedTracker(Callback):
    """A Tune callback that tracks the sweep off Tune's event loop. Subclasses say what each event does in
    ``_connect`` (once, in the thread: the client, or raise to turn tracking off) and ``_on_trial``,
    ``_on_epochs``, ``_on_end``, ``_on_finish``; ``KEEP`` names the attributes that travel with the Tuner."""

    KEEP: tuple[str, ...] = ()
    # names the service in the errors: "MLflow at http://...", "W&B"
    label = "tracker"

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        # per trial: the last epoch sent (a restarted trial repeats some)
        self._logged_epoch: dict[str, int] = {}
        self.errors: list[str] = []
        self.state: dict[str, Any] = {}

    def __getstate__(
        self,
    ) -> dict[str, Any]:
        # Tune pickles its callbacks with the Tuner: no thread, no queue
        return {k: self.__dict__[k] for k in self.KEEP}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "experiment_dir" in state:
            # pickled by a version that kept the folder as a string
            state = {**state, "store": ExperimentStore(state.pop("experiment_dir"))}
        self.__dict__.update(state)
        self._reset()

    # -- Tune's side: put events on the queue, nothing else ---------------------------------------------------
    def setup(self, **info: Any) -> None:  # type: ignore[override]
        self._start()

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._put("trial", trial.trial_id, dict(trial.config))

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ):
        last = self._logged_epoch.get(trial.trial_id, 0)
        epochs = [(epoch, values) for epoch, values in epoch_metrics(result) if epoch > last]
        if epochs:
            self._logged_epoch[trial.trial_id] = epochs[-1][0]
            self._put(
                "epochs",
                trial.trial_id,
                epochs,
                int(result.get("finished_at") or time.time()) * 1000,
            )

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._put("end", trial.trial_id, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._put("end", trial.trial_id, "FAILED")

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        """Tune's loop has ended (finished or stopped): everything queued is sent before ``fit`` returns."""
        sent = threading.Event()
        self._put("flush", sent)
        sent.wait(120.0)

    def _put(self, *event: Any) -> None:
        self._start()
        self._queue.put(event)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._work, name=f"hindsight-{self.label}", daemon=True
            )
            self._thread.start()

    # -- after the sweep ----------------------------------------------------------------------------------------
    def finish(
        self, summary: dict[str, Any] | None, trials: Any = None, timeout: float = 120.0
    ) -> list[str]:
        """Log the finalized sweep (``summary`` None: the sweep stopped unfinished, its runs stay open for the
        resume), wait for everything queued; the errors met, if any."""
        self._put("finish", summary, trials)
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self.errors.append(f"{self.label} did not take everything within {timeout:.0f} s")
        return self.errors

    # -- the background thread --------------------------------------------------------------------------------
    def _work(self) -> None:
        try:
            client = self._connect()
        except Exception as exc:  # noqa: BLE001 - the service unreachable: the sweep goes on, the end says so
            self.errors.append(f"{self.label}: {type(exc).__name__}: {str(exc)[:200]}")
            client = None
        while True:
            event = self._queue.get()
            if event is _STOP:
                return
            if event[0] == "flush":
                event[1].set()
                continue
            if client is None:
                continue
            try:
                getattr(self, f"_on_{event[0]}")(client, *event[1:])
            except Exception as exc:  # noqa: BLE001 - one lost event, never the sweep
                self.errors.append(
                    f"{self.label} {event[0]}: {type(exc).__name__}: {str(exc)[:200]}"
                )

    def _connect(self) -> Any:
        raise NotImplementedError

    def _on_trial(self, client: Any, trial_id: str, config: dict[str, Any]) -> None:
        raise NotImplementedError

    def _on_epochs(
        self, client: Any, trial_id: str, epochs: list[tuple[int, dict[str, float]]], at: int
    ) -> None:
        raise NotImplementedError

    def _on_end(self, client: Any, trial_id: str, status: str) -> None:
        raise NotImplementedError

    def _on_finish(self, client: Any, summary: dict[str, Any] | None, trials: Any) -> None:
        raise NotImplementedError
