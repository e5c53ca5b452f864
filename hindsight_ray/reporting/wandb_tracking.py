"""W&B tracking of a sweep (``run.callbacks: [wandb]``): one W&B run per trial, grouped by the sweep's name,
every epoch's metrics at ``step`` = epoch; once the sweep is finalized, one more run of the group
(``job_type: sweep``) with the sweep's config, its scores, the best trial, a table of every trial and the
exported model with its preprocessing as a model artifact.

``run.wandb.mode: offline`` (the default) keeps the runs on disk, in ``<experiment>/wandb`` for a local
experiment (``wandb sync <experiment>/wandb`` uploads them later); ``online`` sends them as they run (needs
``WANDB_API_KEY`` or ``wandb login``). As with MLflow, W&B is called from one background thread of the driver,
never on Tune's event loop; the run ids are kept in ``wandb.json``, so a resumed sweep logs into the same
runs.
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any

from hindsight_ray.core.experiment import ExperimentStore
from hindsight_ray.core.layout import MODEL_FILES
from hindsight_ray.reporting.queued_tracking import QueuedTracker, run_name, sweep_scores

# {runs: {trial_id: run_id}, numbers: {trial_id: n}}
RUNS_FILE = "wandb.json"


def artifact_name(sweep: str) -> str:
    """W&B artifact names allow letters, digits, ``-``, ``_`` and ``.``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", sweep).strip("-") + "-best-model"


class WandbTracker(QueuedTracker):
    """A Tune callback that logs the sweep to W&B off Tune's event loop (see the module)."""

    KEEP = ("store", "run_dir", "project", "entity", "mode", "sweep", "config")
    label = "W&B"

    def __init__(
        self,
        folder: str | ExperimentStore,
        run_dir: str | None,
        project: str,
        entity: str | None,
        mode: str,
        sweep: str,
        config: dict[str, Any],
    ) -> None:
        # the experiment folder (its runs file; the model files the last run logs)
        self.store = ExperimentStore.of(folder)
        self.run_dir = run_dir
        self.project = project
        self.entity = entity
        self.mode = mode
        self.sweep = sweep
        self.config = config
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        # trial id -> its W&B run, while it trains
        self._active: dict[str, Any] = {}

    def _connect(self) -> Any:
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        store = self.store
        found = (
            store.read_mapping(RUNS_FILE, "the sweep's W&B runs") if store.exists(RUNS_FILE) else {}
        )
        self.state = {
            "runs": dict(found.get("runs", {})),
            "numbers": dict(found.get("numbers", {})),
        }
        if self.run_dir:
            os.makedirs(self.run_dir, exist_ok=True)
        return wandb

    def _init(self, wandb: Any, **options: Any) -> Any:
        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True, save_code=False)
        return wandb.init(
            project=self.project,
            entity=self.entity,
            group=self.sweep,
            dir=self.run_dir,
            mode=self.mode,
            # one run per trial, several at once in this process
            reinit="create_new",
            settings=settings,
            **options,
        )

    def _save(self) -> None:
        self.store.write_json(RUNS_FILE, self.state)

    def _on_trial(self, wandb: Any, trial_id: str, config: dict[str, Any]) -> None:
        if trial_id in self._active:
            # a retry in this process: its run goes on
            return
        runs, numbers = self.state["runs"], self.state["numbers"]
        number = numbers.setdefault(trial_id, len(numbers) + 1)
        run = self._init(
            wandb,
            name=run_name(config, number),
            job_type="trial",
            config={**config, "trial_id": trial_id},
            tags=[f"stage{config.get('stage', '')}"],
            id=runs.get(trial_id),
            # a resumed sweep: the trial's run goes on
            resume="allow",
        )
        self._active[trial_id] = run
        if runs.get(trial_id) != run.id:
            runs[trial_id] = run.id
            self._save()

    def _on_epochs(
        self, wandb: Any, trial_id: str, epochs: list[tuple[int, dict[str, float]]], at: int
    ) -> None:
        run = self._active.get(trial_id)
        if run is None:
            return
        for epoch, values in epochs:
            run.log({**values, "epoch": epoch}, step=epoch)

    def _on_end(self, wandb: Any, trial_id: str, status: str) -> None:
        run = self._active.pop(trial_id, None)
        if run is not None:
            run.finish(exit_code=0 if status == "FINISHED" else 1)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        # trials stopped mid-way (Ctrl-C): their runs end as preempted, the resume goes on
        self._put("close")
        super().on_experiment_end(trials, **info)

    def _on_close(self, wandb: Any) -> None:
        for trial_id in list(self._active):
            run = self._active.pop(trial_id)
            run.mark_preempting()
            run.finish(exit_code=1)

    def _on_finish(self, wandb: Any, summary: dict[str, Any] | None, trials: Any) -> None:
        self._on_close(wandb)
        if summary is None:
            return
        best = summary.get("best") or {}
        run = self._init(
            wandb, name=self.sweep, job_type="sweep", config=self.config, tags=["sweep"]
        )
        run.summary.update({**sweep_scores(summary), "best_trial": str(best.get("trial_id", ""))})
        if trials is not None and len(trials):
            table = trials.copy()
            for column in table.columns:
                # W&B tables take numbers, text and booleans
                if table[column].dtype == object:
                    table[column] = table[column].map(lambda v: v if v is None else str(v))
            run.log({"trials": wandb.Table(dataframe=table)})
        store = self.store
        artifact = wandb.Artifact(
            artifact_name(self.sweep), type="model", metadata={"best_trial": best}
        )
        with tempfile.TemporaryDirectory(prefix="hindsight-wandb-") as folder:
            for name in MODEL_FILES:
                if store.exists(name):
                    path = os.path.join(folder, name)
                    with open(path, "wb") as handle:
                        handle.write(store.read_bytes(name))
                    artifact.add_file(path, name=name)
            run.log_artifact(artifact)
            run.finish()
