"""What a sweep will do, known before Ray starts: its name and folder, the trials of each stage, the
budget, the plan a person reads, and the storage checks that refuse to overwrite anything."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hindsight_ray.config.schema import PREPROCESSING_KEYS, SweepConfig
from hindsight_ray.core.errors import UserError
from hindsight_ray.core.experiment import ExperimentStore
from hindsight_ray.core.location import ExperimentLocation
from hindsight_ray.data import Prepared, dataset_name
from hindsight_ray.running.cluster import ray_address
from hindsight_ray.search.rules import stage2_iterations


@dataclass(frozen=True)
class Plan:
    """What a sweep will do, known before Ray starts."""

    name: str
    storage: str
    # the one experiment object the run passes on (its folder, its files)
    experiment: ExperimentStore
    stage1_trials: int
    stage2_trials: int
    stage1_epochs: int
    stage2_epochs: int

    @property
    def experiment_dir(self) -> str:
        """The experiment folder as a person types it."""
        return self.experiment.uri

    @property
    def location(self) -> ExperimentLocation:
        return self.experiment.where

    @property
    def trial_epochs(self) -> int:
        return self.stage1_trials * self.stage1_epochs + self.stage2_trials * self.stage2_epochs


def make_plan(config: SweepConfig, now: datetime | None = None) -> Plan:
    """Experiment name and folder, and the trials of each stage."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    name = config.name or f"{dataset_name(config.data.source)}-{config.search.strategy}-{stamp}"
    storage = ExperimentLocation.parse(config.storage)
    # into the path: a URI's query stays at its end
    location = storage.join(name)
    stage1 = config.search.stage1
    return Plan(
        name=name,
        storage=storage.uri,
        experiment=ExperimentStore(location),
        stage1_trials=len(stage1.layers) * len(stage1.units),
        stage2_trials=stage2_iterations(config.search.stage2.max_iterations),
        stage1_epochs=stage1.epochs,
        stage2_epochs=config.search.stage2.epochs,
    )


def check_backend(name: str) -> None:
    """A local sweep on a Keras backend this machine cannot import: one line before Ray starts."""
    from hindsight_ray.training.backend import PACKAGES, installed

    if not installed(name):
        extra = {"jax": " (pip install 'hindsight-ray[jax]')", "torch": " (pip install torch)"}.get(
            name, ""
        )
        raise UserError(f"model.backend {name}: {PACKAGES[name]} is not installed here{extra}")


def check_storage(plan: Plan) -> None:
    """Refuse to overwrite an experiment, and fail now if storage cannot be written; creates nothing."""
    if not plan.location.local:
        plan.location.check_reachable()
        try:
            taken = plan.experiment.exists()
        except (OSError, ValueError) as exc:
            raise UserError(f"storage {plan.storage}: {str(exc).splitlines()[0]}") from None
        if taken:
            raise UserError(
                f"experiment {plan.experiment_dir} already exists; choose another --name, or resume it"
            )
        return
    target = Path(plan.experiment_dir)
    if target.exists():
        raise UserError(f"experiment {target} already exists; choose another --name, or resume it")
    existing = Path(plan.storage)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"storage {plan.storage}: {existing} is a file, not a folder")
    try:
        # try it, rather than trust os.access: root passes that check even on /proc or a read-only mount
        os.rmdir(tempfile.mkdtemp(prefix=".hindsight-probe-", dir=existing))
    except OSError as exc:
        raise UserError(
            f"storage {plan.storage} is not writable ({existing}: {exc.strerror or exc})"
        ) from None


def describe_preprocessing(config: SweepConfig, prepared: Prepared | None) -> str:
    """Each preprocessing value in effect and where it came from, e.g. ``log=true (dataset builtin:airline)``."""
    origins = config._origins
    parts = []
    for key in PREPROCESSING_KEYS:
        value = getattr(config.data, key)
        origin = origins.get(key, "config")
        if key == "season" and value is None:
            inferred = prepared.info.get("season") if prepared is not None else None
            value, origin = (
                (inferred, "inferred from the dates") if inferred else ("none", "no regular dates")
            )
        shown = str(value).lower() if isinstance(value, bool) else value
        parts.append(f"{key}={shown} ({origin})")
    return ", ".join(parts)


def describe_plan(config: SweepConfig, plan: Plan, prepared: Prepared | None) -> list[str]:
    """The dry-run / start-of-sweep plan, a few lines a person can read."""
    stage1, stage2 = config.search.stage1, config.search.stage2
    res = config.resources
    lines = [
        f"experiment  {plan.name}",
        f"results     {plan.experiment_dir}",
        f"data        {config.data.source} ({config.data.kind}, task {config.task}, metric {config.metric} "
        f"{config.mode})",
    ]
    if config.data.kind == "timeseries":
        lines.append(f"preprocess  {describe_preprocessing(config, prepared)}")
    if prepared is not None:
        lines.append(f"            train/validation/test samples {prepared.info['windows']}")
    if config.search.strategy == "two_stage":
        lines += [
            f"stage 1     {plan.stage1_trials} trials in parallel: layers {stage1.layers} x units {stage1.units}, "
            f"lr {stage1.learning_rate:g}, {stage1.epochs} epochs",
            f"stage 2     {plan.stage2_trials} trials one at a time: lr from {stage2.max_learning_rate:g} by "
            f"halving/bisection, {stage2.epochs} epochs",
            f"budget      {plan.trial_epochs} trial-epochs",
        ]
    else:
        lines += [
            f"strategy    {config.search.strategy} over layers {stage1.layers} x units {stage1.units} x "
            f"learning rates up to {stage2.max_learning_rate:g}, {stage2.epochs} epochs per trial",
            f"budget      {search_budget(config, plan) or 'unlimited (the whole grid)'} trial-epochs",
        ]
    lines.append(
        f"resources   {res.cpus_per_trial:g} CPU + {res.gpus_per_trial:g} GPU per trial, max concurrent "
        f"{res.max_concurrent or 'as resources allow'}, Ray at {ray_address(config) or 'a new local instance'}"
    )
    return lines


def stage_epochs(config: SweepConfig, plan: Plan, budget: int | None) -> dict[int, tuple[int, int]]:
    """What the heartbeat counts down: stage -> (trials, epochs each); stage 0 for other strategies."""
    if config.search.strategy == "two_stage":
        return {
            1: (plan.stage1_trials, plan.stage1_epochs),
            2: (plan.stage2_trials, plan.stage2_epochs),
        }
    epochs, search = config.search.stage2.epochs, config.search
    if budget is None and search.strategy == "grid":
        count = len(search.stage1.layers) * len(search.stage1.units) * plan.stage2_trials
    elif budget is None and search.manual:
        count = len(search.manual)
    else:
        count = -(-(budget or plan.trial_epochs) // epochs)
    return {0: (count, epochs)}


def search_budget(config: SweepConfig, plan: Plan) -> int | None:
    """Trial-epochs the strategy may spend: ``search.budget``, or for open-ended strategies what a
    two-stage sweep on the same space would spend at most."""
    if config.search.budget is not None:
        return config.search.budget
    if config.search.strategy in ("random", "bayes", "asha"):
        return plan.trial_epochs
    return None
