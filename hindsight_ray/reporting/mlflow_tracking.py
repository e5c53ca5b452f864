"""MLflow tracking of a sweep (``run.callbacks: [mlflow]``): one parent run for the sweep, one nested run per
trial, every epoch's metrics with ``step`` = epoch, and, once the sweep is finalized, its scores, the best
trial marked and the exported model with its preprocessing logged on the parent.

Tune calls its callbacks on its event loop, between trial results: a call to an MLflow server there (a few
milliseconds to seconds each) holds every trial's next epoch. Here the callbacks only put events on a queue;
one background thread with its own ``MlflowClient`` sends them, in order. The run ids are kept in the
experiment folder (``mlflow.json``), so that a resumed sweep goes on logging into the same runs.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
import time
from typing import Any

from ray.tune import Callback

from hindsight_ray.results import FOLDED_KEY, epoch_row
from hindsight_ray.storage import ExperimentStore

RUNS_FILE = "mlflow.json"  # {tracking_uri, experiment_id, parent_run_id, runs: {trial_id: run_id}}
_STOP = object()
TRIAL_TIMERS = ("queue_s", "data_s", "build_s", "train_s", "eval_s", "checkpoint_s", "total_s")


def flat_items(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """A nested config as MLflow params: ``("search.stage1.units", [8, 16])``, one per leaf."""
    items: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            items.extend(flat_items(value, f"{prefix}{key}."))
        else:
            items.append((f"{prefix}{key}", value))
    return items


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


class MlflowTracker(Callback):
    """A Tune callback that logs the sweep to MLflow off Tune's event loop (see the module)."""

    def __init__(
        self,
        experiment_dir: str,
        tracking_uri: str | None,
        experiment: str,
        sweep: str,
        params: dict[str, Any],
        tags: dict[str, str],
    ) -> None:
        self.experiment_dir = experiment_dir
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.sweep = sweep
        self.params = params
        self.tags = tags
        self._reset()

    def _reset(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._logged_epoch: dict[str, int] = {}  # per trial: the last epoch sent (a restarted trial repeats some)
        self.errors: list[str] = []
        self.state: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks with the Tuner: no thread, no queue
        keep = ("experiment_dir", "tracking_uri", "experiment", "sweep", "params", "tags")
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    # -- Tune's side: put events on the queue, nothing else ---------------------------------------------------
    def setup(self, **info: Any) -> None:
        self._start()

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._put("trial", trial.trial_id, dict(trial.config))

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any):
        last = self._logged_epoch.get(trial.trial_id, 0)
        epochs = [(epoch, values) for epoch, values in epoch_metrics(result) if epoch > last]
        if epochs:
            self._logged_epoch[trial.trial_id] = epochs[-1][0]
            self._put("epochs", trial.trial_id, epochs, int(result.get("finished_at") or time.time()) * 1000)

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
            self._thread = threading.Thread(target=self._work, name="hindsight-mlflow", daemon=True)
            self._thread.start()

    # -- after the sweep ----------------------------------------------------------------------------------------
    def finish(self, summary: dict[str, Any] | None, trials: Any = None, timeout: float = 120.0) -> list[str]:
        """Log the finalized sweep on the parent run (``summary`` None: the sweep stopped unfinished, the runs
        stay open for the resume), wait for everything queued; the errors met, if any."""
        self._put("finish", summary, trials)
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self.errors.append(f"MLflow at {self.tracking_uri} did not take everything within {timeout:.0f} s")
        return self.errors

    # -- the background thread --------------------------------------------------------------------------------
    def _work(self) -> None:
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # no "View run" line per trial
        from mlflow import MlflowClient

        client = MlflowClient(self.tracking_uri)
        try:
            self._open(client)
        except Exception as exc:  # noqa: BLE001 - MLflow unreachable: the sweep goes on, the end says so
            self.errors.append(f"MLflow at {self.tracking_uri}: {type(exc).__name__}: {str(exc)[:200]}")
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
                self.errors.append(f"MLflow {event[0]}: {type(exc).__name__}: {str(exc)[:200]}")

    def _open(self, client: Any) -> None:
        store = ExperimentStore(self.experiment_dir)
        if store.exists(RUNS_FILE):  # a resumed sweep: the same runs
            self.state = store.read_mapping(RUNS_FILE, "the sweep's MLflow runs")
            return
        found = client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found is not None else client.create_experiment(self.experiment)
        parent = client.create_run(experiment_id, run_name=self.sweep, tags={**self.tags, "hindsight.role": "sweep"})
        from mlflow.entities import Param

        params = [Param(k, str(v)[:6000]) for k, v in self.params.items()]
        for start in range(0, len(params), 100):
            client.log_batch(parent.info.run_id, params=params[start : start + 100])
        self.state = {
            "tracking_uri": self.tracking_uri,
            "experiment_id": experiment_id,
            "parent_run_id": parent.info.run_id,
            "runs": {},
        }
        self._save()

    def _save(self) -> None:
        ExperimentStore(self.experiment_dir).write_json(RUNS_FILE, self.state)

    def _on_trial(self, client: Any, trial_id: str, config: dict[str, Any]) -> None:
        if trial_id in self.state["runs"]:
            return  # a trial restarted (a retry, a resume): its run goes on
        from mlflow.entities import Param
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        tags = {
            MLFLOW_PARENT_RUN_ID: self.state["parent_run_id"],
            "hindsight.trial_id": trial_id,
            "hindsight.stage": str(config.get("stage", "")),
            "hindsight.role": "trial",
        }
        number = len(self.state["runs"]) + 1
        run = client.create_run(self.state["experiment_id"], run_name=run_name(config, number), tags=tags)
        params = [Param(k, str(v)) for k, v in config.items()]
        client.log_batch(run.info.run_id, params=params)
        self.state["runs"][trial_id] = run.info.run_id
        self._save()

    def _on_epochs(self, client: Any, trial_id: str, epochs: list[tuple[int, dict[str, float]]], at: int) -> None:
        from mlflow.entities import Metric

        run_id = self.state["runs"].get(trial_id)
        if run_id is None:
            return
        metrics = [Metric(k, v, at, epoch) for epoch, values in epochs for k, v in values.items()]
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[start : start + 1000])

    def _on_end(self, client: Any, trial_id: str, status: str) -> None:
        run_id = self.state["runs"].get(trial_id)
        if run_id is not None:
            client.set_terminated(run_id, status)

    def _on_finish(self, client: Any, summary: dict[str, Any] | None, trials: Any) -> None:
        if summary is None:
            return
        from mlflow.entities import Metric, RunTag

        parent, now = self.state["parent_run_id"], int(time.time() * 1000)
        best = summary.get("best") or {}
        metrics = {f"best_{k}": v for k, v in best.items() if k.startswith(("test_", "validation"))}
        metrics.update({k: summary[k] for k in ("wall_s", "trial_s", "trial_epochs", "trials_run") if k in summary})
        for name, scores in (summary.get("baselines") or {}).items():
            metrics.update({f"baseline_{name}_{k}": v for k, v in scores.items() if k not in ("fit_s",)})
        finite = [
            Metric(k, float(v), now, 0)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
        ]
        tags = [RunTag("hindsight.best_trial", str(best.get("trial_id", "")))]
        client.log_batch(parent, metrics=finite, tags=tags)
        if trials is not None:
            for row in trials.to_dict("records"):
                run_id = self.state["runs"].get(row["trial_id"])
                if run_id is None:
                    continue
                trial_tags = [
                    RunTag(f"hindsight.{k}", str(bool(row[k])).lower()) for k in ("speculative", "used") if k in row
                ]
                if row["trial_id"] == best.get("trial_id"):
                    trial_tags.append(RunTag("hindsight.best", "true"))
                timings = [
                    Metric(k, float(row[k]), now, 0)
                    for k in TRIAL_TIMERS
                    if isinstance(row.get(k), (int, float)) and math.isfinite(float(row[k]))
                ]
                client.log_batch(run_id, metrics=timings, tags=trial_tags)
        store = ExperimentStore(self.experiment_dir)
        import tempfile

        with tempfile.TemporaryDirectory(prefix="hindsight-mlflow-") as folder:
            for name in ("best_model.keras", "preprocessing.json", "summary.json", "report.md"):
                if store.exists(name):
                    path = os.path.join(folder, name)
                    with open(path, "wb") as handle:
                        handle.write(store.read_bytes(name))
                    client.log_artifact(parent, path, artifact_path="model" if name != "report.md" else None)
        client.set_terminated(parent, "FINISHED")
