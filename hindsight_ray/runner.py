"""The sweep runner: connect to Ray, check resources, build the Tuner, run, resume, finalize (the Python API
in ``api.py`` and the CLI call it)."""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from hindsight_ray import results as tables
from hindsight_ray.config import SweepConfig, config_to_dict
from hindsight_ray.data import Prepared, dataset_name, prepare
from hindsight_ray.data.sources import DATAFRAME, absolute_source, fingerprint, frame_fingerprint, frame_table
from hindsight_ray.errors import UserError
from hindsight_ray.objective import SCORE_KEY, Objective
from hindsight_ray.safety import experiment_lock, interruptions
from hindsight_ray.search.policy import TwoStagePolicy, stage2_iterations
from hindsight_ray.storage import ExperimentStore, is_uri

Printer = Callable[[str], None]

# Environment for every Ray worker: quiet TensorFlow, no oneDNN reordering (bitwise-repeatable CPU math).
WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_BACKEND": "tensorflow",
              "PYTHONWARNINGS": "ignore"}
CONFIG_FILE = "config.json"
BUILDER_KEY = "model_builder"  # beside the config: the Python function that built the models, when one did
FINGERPRINT_KEY = "data_fingerprint"  # beside the config in config.json: what resume checks the data against


@dataclass(frozen=True)
class Plan:
    """What a sweep will do, known before Ray starts."""

    name: str
    storage: str
    experiment_dir: str
    stage1_trials: int
    stage2_trials: int
    stage1_epochs: int
    stage2_epochs: int

    @property
    def trial_epochs(self) -> int:
        return self.stage1_trials * self.stage1_epochs + self.stage2_trials * self.stage2_epochs


def make_plan(config: SweepConfig, now: datetime | None = None) -> Plan:
    """Experiment name and folder, and the trials of each stage."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    name = config.name or f"{dataset_name(config.data.source)}-{config.search.strategy}-{stamp}"
    storage = config.storage if is_uri(config.storage) else str(Path(config.storage).expanduser().resolve())
    stage1 = config.search.stage1
    return Plan(
        name=name,
        storage=storage,
        experiment_dir=f"{storage.rstrip('/')}/{name}",
        stage1_trials=len(stage1.layers) * len(stage1.units),
        stage2_trials=stage2_iterations(config.search.stage2.max_iterations),
        stage1_epochs=stage1.epochs,
        stage2_epochs=config.search.stage2.epochs,
    )


def check_storage(plan: Plan) -> None:
    """Refuse to overwrite an experiment, and fail now if storage cannot be written; creates nothing."""
    if is_uri(plan.storage):
        try:
            taken = ExperimentStore(plan.experiment_dir).exists()
        except (OSError, ValueError) as exc:
            raise UserError(f"storage {plan.storage}: {str(exc).splitlines()[0]}") from None
        if taken:
            raise UserError(f"experiment {plan.experiment_dir} already exists; choose another --name, or resume it")
        return
    target = Path(plan.experiment_dir)
    if target.exists():
        raise UserError(f"experiment {target} already exists; choose another --name, or resume it")
    existing = Path(plan.storage)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"storage {plan.storage}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"storage {plan.storage} is not writable")


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
        lines += [f"strategy    {config.search.strategy} over layers {stage1.layers} x units {stage1.units} x "
                  f"learning rates up to {stage2.max_learning_rate:g}, {stage2.epochs} epochs per trial",
                  f"budget      {search_budget(config, plan) or 'unlimited (the whole grid)'} trial-epochs"]
    lines.append(f"resources   {res.cpus_per_trial:g} CPU + {res.gpus_per_trial:g} GPU per trial, max concurrent "
                 f"{res.max_concurrent or 'as resources allow'}, Ray at {res.address or 'a new local instance'}")
    return lines


def start_ray(config: SweepConfig) -> bool:
    """Connect to (or start) Ray; True when this call started it and so must shut it down."""
    import ray

    if ray.is_initialized():
        return False
    # Ray announces on every start that it turned token authentication on; we keep it on, quietly
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    options: dict[str, Any] = {
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        "runtime_env": {"env_vars": WORKER_ENV},
    }
    if config.resources.address:
        options["address"] = config.resources.address
    else:
        options.update(include_dashboard=False, dashboard_host="127.0.0.1")
    try:
        ray.init(**options)
    except ConnectionError as exc:
        raise UserError(f"resources.address {config.resources.address}: cannot connect to Ray ({exc})") from None
    return True


NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "lustre", "gpfs", "beegfs", "ceph", "glusterfs", "9p",
                       "fuse.s3fs", "fuse.gcsfuse", "fuse.juicefs", "fuse.sshfs", "fuse.ceph-fuse", "efs")


def filesystem_type(path: str) -> str:
    """The type of the mounted filesystem holding ``path`` (from /proc/mounts), or "" when unknown."""
    target = Path(path).resolve()
    while not target.exists() and target != target.parent:
        target = target.parent
    best, kind = "", ""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    for line in mounts:
        fields = line.split()
        if len(fields) >= 3 and (str(target) + "/").startswith(fields[1].rstrip("/") + "/") and len(fields[1]) > len(best):
            best, kind = fields[1], fields[2]
    return kind


def _machine_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _gb(size: float) -> str:
    return f"{size / 1e9:,.1f} GB" if size < 1e12 else f"{size / 1e12:,.1f} TB"


def check_memory(config: SweepConfig, available: float, where: str) -> None:
    """Refuse a search space whose largest model cannot train in ``available`` bytes, before any data is
    prepared or trial started (instead of out-of-memory retries)."""
    from hindsight_ray.model import largest_trial_bytes

    needed = largest_trial_bytes(config)
    if needed > available:
        stage1 = config.search.stage1
        raise UserError(
            f"the largest model (layers {max(stage1.layers)} x units {max(stage1.units)}, batch "
            f"{config.model.batch_size}, sequence {config.data.max_length if config.data.kind == 'text' else config.data.lags}"
            f"{f', vocabulary {config.data.num_words:,}' if config.data.kind == 'text' else ''}) needs about "
            f"{_gb(needed)} to train, more than {where}'s {_gb(available)}; lower search.stage1.units, "
            "data.max_length, data.num_words or model.batch_size")


def check_cluster(config: SweepConfig, plan: Plan) -> None:
    """Refuse a local-only storage path when trials may run on other machines."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    memory = max((n["Resources"].get("memory", 0) for n in nodes), default=0)
    if memory:
        check_memory(config, memory, "the largest node")
    hosts = {n["NodeManagerAddress"] for n in nodes}
    if len(hosts) > 1 and not is_uri(plan.storage) and filesystem_type(plan.storage) not in NETWORK_FILESYSTEMS:
        raise UserError(
            f"storage {plan.storage} is on this machine's own disk, but the cluster has {len(hosts)} machines: "
            "use shared storage every node mounts (an NFS path) or a pyarrow URI such as s3://bucket/prefix")


def trial_slots(config: SweepConfig) -> int:
    """How many trials fit at once on the live nodes; impossible requests are errors.

    With ``resources.wait_for_autoscaler`` an request no live node can meet is allowed to wait for
    nodes an autoscaler may add (one slot is planned until they come).
    """
    import ray

    res = config.resources
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    most_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
    most_gpus = max((n.get("GPU", 0) for n in nodes), default=0)
    problem = None
    if res.cpus_per_trial > most_cpus:
        problem = (f"resources.cpus_per_trial {res.cpus_per_trial:g} is more than any node has "
                   f"(largest: {most_cpus:g} CPUs)")
    elif res.gpus_per_trial > 0 and most_gpus == 0:
        problem = f"resources.gpus_per_trial {res.gpus_per_trial:g} asks for GPUs, but the cluster has none"
    elif res.gpus_per_trial > most_gpus:
        problem = (f"resources.gpus_per_trial {res.gpus_per_trial:g} is more GPUs than any node has "
                   f"(largest: {most_gpus:g} GPUs)")
    if problem and not res.wait_for_autoscaler:
        raise UserError(problem + "; set resources.wait_for_autoscaler: true if an autoscaler will add such nodes")
    slots = 0
    for node in nodes:
        fit = math.floor(node.get("CPU", 0) / res.cpus_per_trial + 1e-9)
        if res.gpus_per_trial > 0:
            fit = min(fit, math.floor(node.get("GPU", 0) / res.gpus_per_trial + 1e-9))
        slots += fit
    if res.max_concurrent:
        return res.max_concurrent
    return max(1, slots)


def run_sweep(config: SweepConfig, *, dry_run: bool = False, echo: Printer = print, report: bool = True,
              table: pd.DataFrame | None = None, callbacks: list[Any] | None = None,
              model_builder: Any = None) -> dict[str, Any]:
    """Run a sweep end to end; returns its summary (or the plan, for a dry run). ``table``: the data as a
    DataFrame (from Python) instead of ``data.source``."""
    if table is not None:
        config = config.model_copy(update={"data": config.data.model_copy(update={"source": DATAFRAME})})
    config = config.model_copy(update={"data": config.data.model_copy(
        update={"source": absolute_source(config.data.source)})})
    plan = make_plan(config)
    check_storage(plan)
    builder = _builder(config, model_builder)
    configured = config_callbacks(config, plan.name)  # a missing optional package: an error before Ray starts
    if not config.resources.address:
        check_memory(config, _machine_memory(), "this machine")
    prepared = prepare(config.data, seed=config.seed, table=table)
    if dry_run:
        for line in describe_plan(config, plan, prepared):
            echo(line)
        return {"plan": plan.__dict__, "dry_run": True}
    with ray_session(config):
        slots = check_resources(config, plan)  # before the folder exists: a refused sweep writes nothing
        with _locked(plan, create=True):
            recorded = {**config_to_dict(config), FINGERPRINT_KEY: data_fingerprint(config, table)}
            if model_builder is not None:  # a Python function: resume needs it passed again
                recorded[BUILDER_KEY] = f"{model_builder.__module__}:{model_builder.__qualname__}"
            ExperimentStore(plan.experiment_dir).write_json(CONFIG_FILE, recorded)
            for line in describe_plan(config, plan, prepared):
                echo(line)
            echo(f"slots       {slots} trials at once")
            return _fit(config, plan, prepared, slots, echo, resume=False, report=report,
                        callbacks=[*configured, *(callbacks or [])], builder=builder)


def _locked(plan: Plan, create: bool) -> Any:
    """One driver per experiment (a local or NFS folder; remote URIs have no lock)."""
    return nullcontext() if is_uri(plan.experiment_dir) else experiment_lock(plan.experiment_dir, create=create)


@contextmanager
def ray_session(config: SweepConfig) -> Iterator[None]:
    """Ray connected (or started) for the block; shut down after it only if this call started it."""
    import ray

    owns_ray = start_ray(config)
    try:
        yield
    finally:
        if owns_ray:
            ray.shutdown()


def check_resources(config: SweepConfig, plan: Plan) -> int:
    """Storage and resource checks against the live nodes; the number of trial slots."""
    check_cluster(config, plan)
    return trial_slots(config)


def resume_sweep(experiment_dir: str | Path, overrides: list[str] | None = None,
                 echo: Printer = print, table: pd.DataFrame | None = None,
                 model_builder: Any = None) -> dict[str, Any]:
    """Continue an interrupted sweep: finished trials stay, unfinished ones go on from their checkpoints.
    A sweep stopped before Ray's first snapshot starts again in its folder, with its recorded config."""
    from ray import tune

    store = ExperimentStore(str(experiment_dir))
    experiment = store.path("").rstrip("/")
    if not store.exists(CONFIG_FILE):
        raise UserError(f"{experiment_dir} is not a hindsight-ray experiment folder (it has no {CONFIG_FILE})")
    name = experiment.rsplit("/", 1)[-1]
    config, recorded, raw_builder = _recorded_config(store, name, overrides)
    plan = replace(make_plan(config), name=name, storage=experiment.rsplit("/", 1)[0], experiment_dir=experiment)
    with _locked(plan, create=False):
        if store.exists(tables.SUMMARY_FILE):
            echo(f"{experiment} already finished; nothing to resume (results: {tables.SUMMARY_FILE}, "
                 f"{tables.TRIALS_FILE})")
            return store.read_json(tables.SUMMARY_FILE)
        _check_same_data(config, recorded, name, table)
        if raw_builder and model_builder is None:
            raise UserError(f"resume {name}: the sweep was built by the Python function {raw_builder}; resume it "
                            "from Python with hindsight_ray.resume(..., model_builder=that function)")
        builder = _builder(config, model_builder)
        prepared = prepare(config.data, seed=config.seed, table=table)
        restorable = tune.Tuner.can_restore(experiment)  # else it stopped before Ray's first snapshot: start over
        with ray_session(config):
            slots = check_resources(config, plan)
            echo(f"resuming    {experiment}")
            if restorable and config.search.strategy == "two_stage":  # other searchers keep their own state
                reconcile_searcher_state(store)
            return _fit(config, plan, prepared, slots, echo, resume=restorable, report=True, builder=builder)


def _recorded_config(store: ExperimentStore, name: str,
                     overrides: list[str] | None) -> tuple[SweepConfig, dict[str, Any] | None, str | None]:
    """The config a sweep started with (overrides must agree with it) and its data fingerprint."""
    from hindsight_ray.config import apply_overrides, build_config

    try:
        raw = store.read_json(CONFIG_FILE)
    except ValueError:
        raise UserError(f"{store.location}: {CONFIG_FILE} is not valid JSON; this folder cannot be resumed") from None
    if not isinstance(raw, dict):
        raise UserError(f"{store.location}: {CONFIG_FILE} does not hold a sweep config")
    recorded = raw.pop(FINGERPRINT_KEY, None)
    builder = raw.pop(BUILDER_KEY, None)
    config = build_config(raw)
    if overrides:
        wanted = build_config(apply_overrides(raw, overrides))
        if wanted != config:
            changed = _changed_keys(config_to_dict(config), config_to_dict(wanted))
            raise UserError(f"resume {name}: the config differs from the one it started with "
                            f"({', '.join(changed)}); start a new sweep instead")
    return config, recorded, builder


def config_callbacks(config: SweepConfig, name: str) -> list[Any]:
    """The Ray Tune callbacks ``run.callbacks`` names: ``mlflow`` -> Ray's ``MLflowLoggerCallback``, one MLflow
    run per trial with its config and every epoch's metrics, in experiment ``run.mlflow.experiment``."""
    import importlib.util

    callbacks: list[Any] = []
    if "mlflow" in config.run.callbacks:
        if importlib.util.find_spec("mlflow") is None:
            raise UserError("run.callbacks mlflow needs MLflow: pip install 'hindsight-ray[mlflow]'")
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        callbacks.append(MLflowLoggerCallback(tracking_uri=config.run.mlflow.tracking_uri,
                                              experiment_name=config.run.mlflow.experiment or name,
                                              tags={"hindsight_ray.strategy": config.search.strategy}))
    return callbacks


def _builder(config: SweepConfig, model_builder: Any) -> Any:
    """The user's model builder, from Python or from ``model.builder`` (imported now: a bad path is a
    one-line error before Ray starts); None for our LSTM."""
    if model_builder is not None:
        if not callable(model_builder):
            raise UserError(f"model_builder must be a function, got {type(model_builder).__name__}")
        return model_builder
    if config.model.builder:
        from hindsight_ray.model import resolve_builder

        return resolve_builder(config.model.builder)
    return None


def data_fingerprint(config: SweepConfig, table: pd.DataFrame | None) -> dict[str, Any]:
    """The fingerprint of a sweep's data: of its file, or of the DataFrame given from Python."""
    if config.data.source == DATAFRAME:
        return frame_fingerprint(frame_table(table, config.data.source))
    return fingerprint(config.data.source)


def _check_same_data(config: SweepConfig, recorded: dict[str, Any] | None, name: str,
                     table: pd.DataFrame | None) -> None:
    """Refuse to resume on other data than the sweep started with: scores of two datasets must not mix."""
    if recorded is None:
        return  # an experiment from before fingerprints were recorded
    now = data_fingerprint(config, table)
    if now != recorded:
        was = recorded.get("sha256", "?")[:12]
        raise UserError(f"resume {name}: data.source {config.data.source} changed since the sweep started "
                        f"(sha256 {was}..., now {str(now.get('sha256', '?'))[:12]}...); start a new sweep instead")


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def _fit(config: SweepConfig, plan: Plan, prepared: Prepared, slots: int, echo: Printer, *,
         resume: bool, report: bool, callbacks: list[Any] | None = None, builder: Any = None) -> dict[str, Any]:
    import ray
    from ray import tune

    from hindsight_ray.console import StageConsole, TrialClock
    from hindsight_ray.search.strategies import EpochBudget, build_strategy
    from hindsight_ray.trainable import DataHandle, TrialSetup, train_lstm

    # checkpoints every epoch force experiment snapshots often; that is expected here, not a warning
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    setup = TrialSetup(
        data=DataHandle(ray.put(prepared)), seed=config.seed, batch_size=config.model.batch_size,
        optimizer=config.model.optimizer, bidirectional=config.model.bidirectional, dropout=config.model.dropout,
        loss=config.model.loss, objective=config.objective,
        checkpoint_every=config.run.checkpoint_every, mixed_precision=config.resources.mixed_precision,
        builder=builder,
    )
    trainable = tune.with_resources(
        tune.with_parameters(train_lstm, setup=setup),
        {"cpu": config.resources.cpus_per_trial, "gpu": config.resources.gpus_per_trial},
    )
    if resume:
        tuner = tune.Tuner.restore(plan.experiment_dir, trainable=trainable, resume_unfinished=True,
                                   resume_errored=False)
    else:
        stage1, stage2 = config.search.stage1, config.search.stage2
        strategy = build_strategy(
            config.search.strategy, layers=stage1.layers, units=stage1.units,
            stage1_learning_rate=stage1.learning_rate, stage1_epochs=stage1.epochs,
            max_learning_rate=stage2.max_learning_rate, max_iterations=stage2.max_iterations,
            stage2_epochs=stage2.epochs, metric=SCORE_KEY, mode=config.mode, slots=slots, seed=config.seed,
            speculative=stage2.speculative, early_stop=stage1_early_stop(config),
            manual=[m.model_dump() for m in config.search.manual] if config.search.manual else None,
        )
        console = StageConsole(config.objective, plan.stage1_trials, plan.stage2_trials,
                               stage2.max_learning_rate, echo=echo)
        budget = search_budget(config, plan)
        tuner = tune.Tuner(
            trainable,
            param_space=strategy.param_space,
            tune_config=tune.TuneConfig(
                metric=SCORE_KEY, mode=config.mode, num_samples=strategy.num_samples,
                search_alg=strategy.search_alg, scheduler=strategy.scheduler,
                # a worker keeps TensorFlow imported between trials; each trial clears Keras' session
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=plan.name,
                storage_path=plan.storage,
                stop=EpochBudget(budget) if budget else None,
                failure_config=tune.FailureConfig(max_failures=config.run.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=config.run.keep_checkpoints),
                callbacks=[TrialClock(plan.experiment_dir), console, *(callbacks or [])],
                verbose=0,
            ),
        )
    with interruptions(plan.experiment_dir) as watch:
        tuner.fit()
        watch.raise_if_stopped()  # Tune returns normally after Ctrl-C: a half-run sweep is never finalized
    store = ExperimentStore(plan.experiment_dir)
    policy = load_policy(store) if config.search.strategy == "two_stage" else None
    summary = finalize(config, store, prepared, setup.data.ref, policy)
    echo(f"done in {summary['wall_s']:.0f} s: best {_describe_best(summary, config.objective)}")
    echo(f"results in {plan.experiment_dir} (trials.parquet, epochs.parquet, summary.json, best_model.keras)")
    if report:
        from hindsight_ray.report import write_sweep_report

        echo(f"report      {write_sweep_report(plan.experiment_dir)}")
    return summary


def search_budget(config: SweepConfig, plan: Plan) -> int | None:
    """Trial-epochs the strategy may spend: ``search.budget``, or for open-ended strategies what a
    two-stage sweep on the same space would spend at most."""
    if config.search.budget is not None:
        return config.search.budget
    if config.search.strategy in ("random", "bayes", "asha"):
        return plan.trial_epochs
    return None


def stage1_early_stop(config: SweepConfig) -> Any:
    """ASHA over the stage-1 epochs when ``search.stage1.early_stop: asha``; None otherwise."""
    if config.search.stage1.early_stop != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    epochs = config.search.stage1.epochs
    return ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=max(1, epochs // 8), reduction_factor=3)


def _describe_best(summary: dict[str, Any], objective: Objective) -> str:
    best = summary.get("best") or {}
    if not best:
        return "none (every trial failed)"
    test = best.get(objective.test_key)
    return (f"layers={best['layers']} units={best['units']} lr={best['learning_rate']:g} "
            f"{objective.metric}={best['validation']:.4g} (epoch {best['epoch']}) test={test:.4g}")


def load_policy(store: ExperimentStore) -> TwoStagePolicy:
    """The two-stage decisions as last saved with the experiment (our JSON under Ray's ``.pkl`` name)."""
    files = store.names("searcher-state-")  # named by session start time: the last is the newest
    if not files:
        raise UserError(f"{store.location}: no searcher state found")
    return TwoStagePolicy.from_state(store.read_json(files[-1])["policy"])


def reconcile_searcher_state(store: ExperimentStore) -> None:
    """Forget trials the searcher suggested but Ray never recorded, so they are suggested again."""
    from ray.tune import ExperimentAnalysis

    files = store.names("searcher-state-")
    if not files:
        return
    state = store.read_json(files[-1])
    policy = TwoStagePolicy.from_state(state["policy"])
    known = {trial.trial_id for trial in ExperimentAnalysis(store.path("").rstrip("/")).trials}
    lost = [trial_id for trial_id in policy.trials if trial_id not in known]
    if not lost:
        return
    for trial_id in lost:
        policy.forget(trial_id)
    state["policy"] = policy.get_state()
    store.write_json(files[-1], state)


def load_outcomes(experiment_dir: str) -> list[tables.TrialOutcome]:
    """Every trial of an experiment dir, as Ray recorded it."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(experiment_dir)
    frames = analysis.trial_dataframes
    outcomes = []
    for trial in analysis.trials:
        frame = frames.get(trial.trial_id)
        records = [] if frame is None or frame.empty else frame.to_dict("records")
        checkpoint = trial.checkpoint
        outcomes.append(tables.TrialOutcome(
            trial_id=trial.trial_id, config=dict(trial.config), status=trial.status, results=records,
            checkpoint_path=checkpoint.path if checkpoint is not None else None,
            num_failures=int(trial.num_failures),
        ))
    return outcomes


def evaluate_on_test(prepared: Prepared, checkpoint_path: str, experiment_dir: str) -> dict[str, Any]:
    """Load a trial's final model, score it once on the test split, export it (runs as a Ray task)."""
    from ray.tune import Checkpoint

    from hindsight_ray.trainable import configure_tensorflow, load_scored_model, predict

    configure_tensorflow(1)
    try:
        with Checkpoint(checkpoint_path).as_directory() as folder:
            model = load_scored_model(folder)  # the scored (best) epoch's weights, not merely the last
    except Exception as exc:  # a corrupt final checkpoint: one line for the driver, never a traceback
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        return {"error": f"the best trial's checkpoint {checkpoint_path} cannot be read ({type(exc).__name__}: "
                         f"{detail}); its model cannot be exported"}
    predicted = predict(model, prepared.x_test)
    scores = {f"test_{k}": v for k, v in prepared.scores("test", predicted).items()}
    store = ExperimentStore(experiment_dir)
    if prepared.task == "regression":  # first target, first step: enough to plot against the truth
        frame = pd.DataFrame({"origin": prepared.origins["test"], "actual": prepared.actual["test"][:, 0],
                              "predicted": prepared.in_data_units("test", predicted)[:, 0]})
        store.write_bytes(tables.PREDICTIONS_FILE, tables.parquet_bytes(frame))
    with tempfile.TemporaryDirectory() as folder:
        exported = os.path.join(folder, tables.BEST_MODEL_FILE)
        model.save(exported)
        store.upload(tables.BEST_MODEL_FILE, exported)
    return scores


def finalize(config: SweepConfig, store: ExperimentStore, prepared: Prepared, data_ref: Any,
             policy: TwoStagePolicy | None) -> dict[str, Any]:
    """Tables, the best model on test, and the summary, written into the experiment dir (each atomically).

    ``policy`` is the two-stage search's decisions; other strategies pass None and their best is
    the best trial that ran all its epochs.
    """
    import ray

    from hindsight_ray.console import read_queue_times

    experiment = store.path("").rstrip("/")
    outcomes = load_outcomes(experiment)
    objective = config.objective
    trials = tables.trials_table(outcomes, objective=objective, strategy=config.search.strategy,
                                 queued_at=read_queue_times(experiment))
    records = policy.trials if policy is not None else {}
    used = policy.used_trial_ids() if policy is not None else set(trials.trial_id)
    trials["speculative"] = [bool(records[t].speculative) if t in records else False for t in trials.trial_id]
    trials["used"] = [t in used for t in trials.trial_id]
    # stopped before their last epoch (early stopping, a budget, unused speculation): recorded, no score
    stopped = ((trials["status"] == "TERMINATED") & (trials["epochs_run"].fillna(0) < trials["epochs"])).tolist()
    stopped = [a or (t in records and records[t].status == "stopped") for a, t in zip(stopped, trials.trial_id, strict=True)]
    trials.loc[stopped, "status"] = "STOPPED"
    trials.loc[stopped, config.metric] = None
    if policy is not None:
        best_id = getattr(policy.best(), "trial_id", None)
    else:
        index = objective.best_index(trials[config.metric].astype(float).tolist())
        best_id = None if index is None else trials.trial_id.iloc[index]
    began = trials["queued_at"].min() if trials["queued_at"].notna().any() else trials["started_at"].min()
    wall_s = float(trials["finished_at"].max() - began)
    summary: dict[str, Any] = {
        "experiment": experiment.rsplit("/", 1)[-1],
        "experiment_dir": experiment,
        "strategy": config.search.strategy,
        "metric": config.metric,
        "mode": config.mode,
        "score": objective.rule,
        "seed": config.seed,
        "budget": config.search.budget,
        "data": {"source": config.data.source, **prepared.info},
        "stage1": None,
        "stage2": None,
        "best": None,
        "baselines": prepared.baselines,
        "wall_s": wall_s,
        "trial_s": float(trials["total_s"].fillna(0).sum()),
        "trial_epochs": int(trials["epochs_run"].fillna(0).sum()),
        "trials_run": len(outcomes),
        "stopped_trials": int(sum(stopped)),
        "retries": int(trials["retries"].sum()),
        "utilization": tables.utilization(trials, wall_s),
        "finished_at": time.time(),
    }
    if policy is not None:
        winner = policy.winner
        summary["stage1"] = {
            "trials": len(policy.stage1_trials()),
            "failed": sum(t.status == "error" for t in policy.stage1_trials()),
            "winner": None if winner is None else {
                "trial_id": winner.trial_id, "layers": winner.layers, "units": winner.units,
                "validation": winner.score, "params": winner.params},
        }
        summary["stage2"] = {"iterations": policy.iterations, "learning_rate_path": policy.learning_rate_path(),
                             "speculative": bool(policy.settings["speculative"]),
                             "speculative_trials": int(trials["speculative"].sum())}
    if best_id is not None:
        row = trials.loc[trials["trial_id"] == best_id].iloc[0]
        evaluate = ray.remote(num_cpus=1)(evaluate_on_test)
        test = ray.get(evaluate.remote(data_ref, row.checkpoint_path, experiment))
        if "error" in test:
            raise UserError(test["error"])
        for key, value in test.items():
            trials.loc[trials["trial_id"] == best_id, key] = value
        summary["best"] = {"trial_id": best_id, "stage": None if pd.isna(row.stage) else int(row.stage),
                           "layers": int(row.layers), "units": int(row.units),
                           "learning_rate": float(row.learning_rate), "epochs": int(row.epochs),
                           "epoch": int(row.score_epoch), "validation": float(row[config.metric]),
                           "last_validation": float(row[objective.last_key]), **test,
                           "model": store.path(tables.BEST_MODEL_FILE)}
    recorded = store.read_json(CONFIG_FILE).get(FINGERPRINT_KEY)
    store.write_json(tables.PREPROCESSING_FILE, {**prepared.preprocessing, "fingerprint": recorded})
    store.write_bytes(tables.TRIALS_FILE, tables.parquet_bytes(trials))
    store.write_bytes(tables.EPOCHS_FILE, tables.parquet_bytes(tables.epochs_table(outcomes)))
    store.write_json(tables.SUMMARY_FILE, summary)  # last: its presence means "finished"
    return summary
