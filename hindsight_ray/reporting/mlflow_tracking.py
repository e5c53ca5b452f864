"""MLflow tracking of a sweep (``run.callbacks: [mlflow]``): one parent run for the sweep, one nested run per
trial, every epoch's metrics with ``step`` = epoch, and, once the sweep is finalized, its scores, the best
trial marked and the exported model with its preprocessing logged on the parent.

Tune calls its callbacks on its event loop, between trial results: a call to an MLflow server there (a few
milliseconds to seconds each) holds every trial's next epoch. Here the callbacks only put events on a queue;
one background thread with its own ``MlflowClient`` sends them, in order. The run ids are kept in the
experiment folder (``mlflow.json``), so that a resumed sweep goes on logging into the same runs.
"""

from __future__ import annotations

import os
import time
from typing import Any

from hindsight_ray.core.experiment import ExperimentStore
from hindsight_ray.core.layout import MODEL_FILES
from hindsight_ray.reporting.queued_tracking import (
    TRIAL_TIMERS,
    QueuedTracker,
    epoch_metrics,
    finite_numbers,
    run_name,
    sweep_scores,
)

__all__ = ["MlflowTracker", "epoch_metrics", "flat_items", "run_name"]
# {tracking_uri, experiment_id, parent_run_id, runs: {trial_id: run_id}}
RUNS_FILE = "mlflow.json"


def flat_items(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """A nested config as MLflow params: ``("search.stage1.units", [8, 16])``, one per leaf."""
    items: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            items.extend(flat_items(value, f"{prefix}{key}."))
        else:
            items.append((f"{prefix}{key}", value))
    return items


class MlflowTracker(QueuedTracker):
    """A Tune callback that logs the sweep to MLflow off Tune's event loop (see the module)."""

    KEEP = ("store", "tracking_uri", "experiment", "sweep", "params", "tags")

    def __init__(
        self,
        folder: str | ExperimentStore,
        tracking_uri: str | None,
        experiment: str,
        sweep: str,
        params: dict[str, Any],
        tags: dict[str, str],
    ) -> None:
        # the experiment folder (its runs file; the model files the last run logs)
        self.store = ExperimentStore.of(folder)
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.sweep = sweep
        self.params = params
        self.tags = tags
        super().__init__()

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"MLflow at {self.tracking_uri}"

    def _connect(self) -> Any:
        # no "View run" line per trial
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        from mlflow import MlflowClient

        client = MlflowClient(self.tracking_uri)
        self._open(client)
        return client

    def _open(self, client: Any) -> None:
        store = self.store
        if store.exists(RUNS_FILE):
            # a resumed sweep: the same runs
            self.state = store.read_mapping(RUNS_FILE, "the sweep's MLflow runs")
            return
        found = client.get_experiment_by_name(self.experiment)
        experiment_id = (
            found.experiment_id if found is not None else client.create_experiment(self.experiment)
        )
        parent = client.create_run(
            experiment_id, run_name=self.sweep, tags={**self.tags, "hindsight.role": "sweep"}
        )
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
        self.store.write_json(RUNS_FILE, self.state)

    def _on_trial(self, client: Any, trial_id: str, config: dict[str, Any]) -> None:
        if trial_id in self.state["runs"]:
            # a trial restarted (a retry, a resume): its run goes on
            return
        from mlflow.entities import Param
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        tags = {
            MLFLOW_PARENT_RUN_ID: self.state["parent_run_id"],
            "hindsight.trial_id": trial_id,
            "hindsight.stage": str(config.get("stage", "")),
            "hindsight.role": "trial",
        }
        number = len(self.state["runs"]) + 1
        run = client.create_run(
            self.state["experiment_id"], run_name=run_name(config, number), tags=tags
        )
        params = [Param(k, str(v)) for k, v in config.items()]
        client.log_batch(run.info.run_id, params=params)
        self.state["runs"][trial_id] = run.info.run_id
        self._save()

    def _on_epochs(
        self, client: Any, trial_id: str, epochs: list[tuple[int, dict[str, float]]], at: int
    ) -> None:
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
        finite = [Metric(k, v, now, 0) for k, v in sweep_scores(summary).items()]
        tags = [RunTag("hindsight.best_trial", str(best.get("trial_id", "")))]
        client.log_batch(parent, metrics=finite, tags=tags)
        if trials is not None:
            for row in trials.to_dict("records"):
                run_id = self.state["runs"].get(row["trial_id"])
                if run_id is None:
                    continue
                trial_tags = [
                    RunTag(f"hindsight.{k}", str(bool(row[k])).lower())
                    for k in ("speculative", "used")
                    if k in row
                ]
                if row["trial_id"] == best.get("trial_id"):
                    trial_tags.append(RunTag("hindsight.best", "true"))
                timings = [
                    Metric(k, v, now, 0)
                    for k, v in finite_numbers({k: row.get(k) for k in TRIAL_TIMERS}).items()
                ]
                client.log_batch(run_id, metrics=timings, tags=trial_tags)
        store = self.store
        import tempfile

        with tempfile.TemporaryDirectory(prefix="hindsight-mlflow-") as folder:
            for name in MODEL_FILES:
                if store.exists(name):
                    path = os.path.join(folder, name)
                    with open(path, "wb") as handle:
                        handle.write(store.read_bytes(name))
                    client.log_artifact(
                        parent, path, artifact_path="model" if name != "report.md" else None
                    )
        client.set_terminated(parent, "FINISHED")
