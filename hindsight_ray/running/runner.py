"""The sweep runner: connect to Ray, check resources, build the Tuner, run, resume, finalize (the Python API
in ``api.py`` and the CLI call it)."""

from __future__ import annotations

import logging
import os
import shlex
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import pandas as pd

from hindsight_ray.config.schema import SweepConfig, changed_keys, config_to_dict, speculative_for
from hindsight_ray.core import layout
from hindsight_ray.core.disk import DiskFull, is_disk_full
from hindsight_ray.core.errors import UserError
from hindsight_ray.core.experiment import ExperimentStore
from hindsight_ray.core.layout import BUILDER_KEY, CONFIG_FILE, FINGERPRINT_KEY
from hindsight_ray.core.location import ExperimentLocation
from hindsight_ray.core.objective import SCORE_KEY, baseline_verdict
from hindsight_ray.data import Prepared, prepare
from hindsight_ray.data.sources import (
    DATAFRAME,
    absolute_source,
    fingerprint,
    frame_fingerprint,
    frame_table,
)
from hindsight_ray.reporting.progress import Printer
from hindsight_ray.reporting.tables import Summary
from hindsight_ray.running.checkpoint_repair import repair_missing_checkpoints
from hindsight_ray.running.cluster import (
    check_memory,
    check_resources,
    check_workers_memory,
    local_ray_watch,
    local_trials,
    machine_memory,
    ray_address,
    ray_session,
)
from hindsight_ray.running.finalize import (
    describe_best,
    finalize,
    load_policy,
    set_aside_damaged_state,
)
from hindsight_ray.running.lock_and_signals import (
    Interrupted,
    experiment_lock,
    in_use_by,
    interruptions,
    running,
)
from hindsight_ray.running.plan import (
    Plan,
    check_backend,
    check_storage,
    describe_plan,
    make_plan,
    search_budget,
    stage_epochs,
)
from hindsight_ray.running.searcher_state import ensure_searcher_state, relocate_search_algorithm
from hindsight_ray.training.warm import join_warming


@dataclass(frozen=True)
class _Checked:
    """A sweep checked before anything is read or started: its config (the source made absolute), plan,
    model builder and the trackers its config names."""

    config: SweepConfig
    plan: Plan
    builder: Any
    trackers: list[Any]


def check_sweep(
    config: SweepConfig, table: pd.DataFrame | None = None, model_builder: Any = None
) -> _Checked:
    """Everything that can be checked before the data is read or Ray starts: the storage, the model
    builder, the trackers' packages, and for a local Ray the backend and this machine's memory."""
    source = DATAFRAME if table is not None else absolute_source(config.data.source)
    config = config.model_copy(update={"data": config.data.model_copy(update={"source": source})})
    plan = make_plan(config)
    check_storage(plan)
    builder = _builder(config, model_builder)
    # a missing optional package: an error before Ray starts
    trackers = config_callbacks(config, plan)
    if not ray_address(config):
        # the trials and the test evaluation run on this machine
        check_backend(config.model.backend)
        check_memory(config, machine_memory(), "this machine")
        check_workers_memory(config, local_trials(config), machine_memory(), "this machine")
    return _Checked(config, plan, builder, trackers)


def plan_sweep(
    config: SweepConfig,
    *,
    echo: Printer = print,
    table: pd.DataFrame | None = None,
    model_builder: Any = None,
) -> Plan:
    """The dry run: every check a sweep makes before training, the data read and prepared, the plan
    printed; nothing is written and Ray does not start."""
    checked = check_sweep(config, table, model_builder)
    prepared = prepare(checked.config.data, seed=checked.config.seed, table=table)
    for line in describe_plan(checked.config, checked.plan, prepared):
        echo(line)
    return checked.plan


def run_sweep(
    config: SweepConfig,
    *,
    echo: Printer = print,
    report: bool = True,
    table: pd.DataFrame | None = None,
    callbacks: list[Any] | None = None,
    model_builder: Any = None,
) -> Summary:
    """Run a sweep end to end and return its summary. ``table``: the data as a DataFrame (from Python)
    instead of ``data.source``."""
    began = time.time()
    checked = check_sweep(config, table, model_builder)
    config, plan = checked.config, checked.plan
    prepared = prepare(config.data, seed=config.seed, table=table)
    with ray_session(config):
        # before the folder exists: a refused sweep writes nothing
        slots = check_resources(config, plan.storage)
        with (
            _locked(plan, create=True),
            running(plan.experiment_dir),
            local_ray_watch(plan.experiment_dir),
        ):
            _record_config(config, plan, table, model_builder)
            _announce(config, plan, prepared, slots, echo)
            ending = _fit(
                config,
                plan,
                prepared,
                slots,
                echo,
                resume=False,
                report=report,
                callbacks=[*checked.trackers, *(callbacks or [])],
                builder=checked.builder,
                began=began,
            )
    with running(plan.experiment_dir):
        # Ray has shut down while the report was drawn
        return ending.finish()


def _record_config(
    config: SweepConfig, plan: Plan, table: pd.DataFrame | None, model_builder: Any
) -> None:
    """``config.json``: the config, the data's fingerprint, and the builder's name when one was passed."""
    recorded = {**config_to_dict(config), FINGERPRINT_KEY: data_fingerprint(config, table)}
    if model_builder is not None:
        # a Python function: resume needs it passed again
        recorded[BUILDER_KEY] = f"{model_builder.__module__}:{model_builder.__qualname__}"
    plan.experiment.write_json(CONFIG_FILE, recorded)


def _announce(
    config: SweepConfig, plan: Plan, prepared: Prepared, slots: int, echo: Printer
) -> None:
    """The plan, then how many trials run at once."""
    for line in describe_plan(config, plan, prepared):
        echo(line)
    ahead = config.search.strategy == "two_stage" and speculative_for(
        config.search.stage2.speculative, slots, config.resources
    )
    extra = "; stage 2 runs the next decisions ahead on free slots" if ahead else ""
    echo(f"slots       {slots} trials at once{extra}")


def _locked(plan: Plan, create: bool) -> Any:
    """One driver per experiment (a local or NFS folder; remote URIs have no lock)."""
    return (
        experiment_lock(plan.location.path, create=create) if plan.location.local else nullcontext()
    )


def resume_sweep(
    experiment_dir: str | Path | ExperimentLocation,
    overrides: list[str] | None = None,
    echo: Printer = print,
    table: pd.DataFrame | None = None,
    model_builder: Any = None,
) -> Summary:
    """Continue an interrupted sweep: finished trials stay, unfinished ones go on from their checkpoints.
    A sweep stopped before Ray's first snapshot starts again in its folder, with its recorded config."""
    store = _experiment_store(experiment_dir)
    location, experiment = store.where, store.uri
    config, recorded, raw_builder = _recorded_config(store, location.name, overrides)
    plan = replace(
        make_plan(config),
        name=location.name,
        storage=location.parent.uri,
        experiment=store,
    )
    if store.exists(layout.SUMMARY_FILE):
        # finished: read only, not even the lock is touched
        return _finished_summary(store, echo)
    with _locked(plan, create=False), running(experiment):
        _check_same_data(config, recorded, location.name, table)
        builder = _resume_builder(config, location.name, raw_builder, model_builder)
        if not ray_address(config):
            check_backend(config.model.backend)
        prepared = prepare(config.data, seed=config.seed, table=table)
        for name in set_aside_damaged_state(store):
            echo(f"damaged     {name} (not readable JSON) set aside as damaged-{name}")
        from ray import tune

        # else it stopped before Ray's first snapshot: start over
        restorable = tune.Tuner.can_restore(location.path, storage_filesystem=location.fs)
        with ray_session(config):
            slots = check_resources(config, plan.storage)
            echo(f"resuming    {experiment}")
            if restorable:
                _repair_before_restore(store, config, slots, echo)
            with local_ray_watch(experiment):
                ending = _fit(
                    config,
                    plan,
                    prepared,
                    slots,
                    echo,
                    resume=restorable,
                    report=True,
                    builder=builder,
                )
    with running(experiment):
        # Ray has shut down while the report was drawn
        return ending.finish()


def _experiment_store(experiment_dir: str | Path | ExperimentLocation) -> ExperimentStore:
    """The experiment to resume, where it is now (a moved folder reads its own files); one line when
    it is no experiment, or one a sweep is creating right now."""
    location = ExperimentLocation.parse(experiment_dir)
    if not location.local:
        location.check_reachable()
    store = ExperimentStore(location)
    if not store.exists(CONFIG_FILE):
        holder = in_use_by(location.path) if location.local else None
        if holder:
            # a sweep that made the folder a moment ago and has not written its config yet
            raise UserError(
                f"experiment {location.path} is in use by a running sweep ({holder}); wait for it"
            )
        raise UserError(
            f"{experiment_dir} is not a hindsight-ray experiment folder (it has no {CONFIG_FILE})"
        )
    return store


def _finished_summary(store: ExperimentStore, echo: Printer) -> Summary:
    """A finished sweep's summary, read only."""
    summary, trials = layout.SUMMARY_FILE, layout.TRIALS_FILE
    echo(f"{store.uri} already finished; nothing to resume (results: {summary}, {trials})")
    try:
        return cast(Summary, store.read_json(summary))
    except ValueError:
        raise UserError(
            f"{store.uri}: {summary} is damaged (not readable JSON); the sweep had "
            "finished, so its tables are there: delete the file to finalize it again"
        ) from None


def _resume_builder(
    config: SweepConfig, name: str, recorded_builder: str | None, model_builder: Any
) -> Any:
    """The model builder a resume needs: the one the sweep was built with."""
    if recorded_builder and model_builder is None:
        raise UserError(
            f"resume {name}: the sweep was built by the Python function {recorded_builder}; resume it "
            "from Python with hindsight_ray.resume(..., model_builder=that function)"
        )
    return _builder(config, model_builder)


def _repair_before_restore(
    store: ExperimentStore, config: SweepConfig, slots: int, echo: Printer
) -> None:
    """Make the trials' checkpoints and the searcher's state agree with Ray's last snapshot."""
    for line in repair_missing_checkpoints(store.where):
        echo(f"repaired    {line}")
    # a moved or copied folder: new trials go where it is now, not where it was started
    relocate_search_algorithm(store, storage_options(store.where)["storage_filesystem"])
    if config.search.strategy == "two_stage":
        # other searchers keep their own state
        rebuilt = ensure_searcher_state(store, config, slots)
        if rebuilt:
            echo(f"rebuilt     {rebuilt}")


# data keys added after sweeps had been recorded, and the value every sweep recorded before had
ADDED_DATA_KEYS = {"seasonal_difference": False}


def _recorded_config(
    store: ExperimentStore, name: str, overrides: list[str] | None
) -> tuple[SweepConfig, dict[str, Any] | None, str | None]:
    """The config a sweep started with (overrides must agree with it) and its data fingerprint."""
    from hindsight_ray.config.schema import apply_overrides, build_config

    raw = store.read_mapping(CONFIG_FILE, "a sweep config; this folder cannot be resumed")
    recorded = raw.pop(FINGERPRINT_KEY, None)
    builder = raw.pop(BUILDER_KEY, None)
    data = raw.get("data")
    if isinstance(data, dict):
        # a key added since the sweep started was off then, whatever its default now
        for key, then in ADDED_DATA_KEYS.items():
            data.setdefault(key, then)
    try:
        config = build_config(raw)
    except UserError as exc:
        raise UserError(
            f"{store.location}: {CONFIG_FILE} does not hold a hindsight-ray sweep config ({exc})"
        ) from None
    if overrides:
        wanted = build_config(apply_overrides(raw, overrides))
        if wanted != config:
            changed = changed_keys(config_to_dict(config), config_to_dict(wanted))
            raise UserError(
                f"resume {name}: the config differs from the one it started with "
                f"({', '.join(changed)}); start a new sweep instead"
            )
    return config, recorded, builder


def config_callbacks(config: SweepConfig, plan: Plan) -> list[Any]:
    """The Ray Tune callbacks ``run.callbacks`` names: ``mlflow`` -> :class:`MlflowTracker`, a parent run for the
    sweep and a nested run per trial with every epoch's metrics, in experiment ``run.mlflow.experiment``;
    ``wandb`` -> :class:`WandbTracker`, a W&B run per trial grouped by the sweep. One not installed: a one-line
    error (this runs before Ray starts)."""
    import importlib.util

    for name in config.run.callbacks:
        if importlib.util.find_spec(name) is None:
            raise UserError(
                f"run.callbacks {name} needs {name}: pip install 'hindsight-ray[{name}]'"
            )
    return [TRACKERS[name](config, plan.experiment, plan.name) for name in config.run.callbacks]


def mlflow_tracker(config: SweepConfig, experiment: ExperimentStore, name: str) -> Any:
    """The sweep's :class:`~hindsight_ray.reporting.mlflow_tracking.MlflowTracker` (its runs are found again
    from the experiment folder, so one made for a resume logs into the same runs)."""
    from hindsight_ray.reporting.mlflow_tracking import MlflowTracker, flat_items

    return MlflowTracker(
        experiment,
        config.run.mlflow.tracking_uri,
        config.run.mlflow.experiment or name,
        name,
        params=dict(flat_items(config_to_dict(config))),
        tags={
            "hindsight.strategy": config.search.strategy,
            "hindsight.dataset": str(config.data.source),
        },
    )


def wandb_tracker(config: SweepConfig, experiment: ExperimentStore, name: str) -> Any:
    """The sweep's :class:`~hindsight_ray.reporting.wandb_tracking.WandbTracker` (runs found again from the
    experiment folder); W&B keeps its runs in the experiment folder when that is on this machine."""
    from hindsight_ray.reporting.wandb_tracking import WandbTracker

    settings = config.run.wandb
    where = experiment.where
    # W&B writes <run_dir>/wandb
    run_dir = settings.dir or (where.path if where.local else None)
    return WandbTracker(
        experiment,
        run_dir,
        settings.project,
        settings.entity,
        settings.mode,
        name,
        config_to_dict(config),
    )


TRACKERS = {"mlflow": mlflow_tracker, "wandb": wandb_tracker}


def _builder(config: SweepConfig, model_builder: Any) -> Any:
    """The user's model builder, from Python or from ``model.builder`` (imported now: a bad path is a
    one-line error before Ray starts); None for our LSTM."""
    if model_builder is not None:
        if not callable(model_builder):
            raise UserError(f"model_builder must be a function, got {type(model_builder).__name__}")
        return model_builder
    if config.model.builder:
        from hindsight_ray.training.model import resolve_builder

        return resolve_builder(config.model.builder)
    return None


def data_fingerprint(config: SweepConfig, table: pd.DataFrame | None) -> dict[str, Any]:
    """The fingerprint of a sweep's data: of its file, or of the DataFrame given from Python."""
    if config.data.source == DATAFRAME:
        return frame_fingerprint(frame_table(table, config.data.source))
    return fingerprint(config.data.source)


def _check_same_data(
    config: SweepConfig, recorded: dict[str, Any] | None, name: str, table: pd.DataFrame | None
) -> None:
    """Refuse to resume on other data than the sweep started with: scores of two datasets must not mix."""
    if recorded is None:
        # an experiment from before fingerprints were recorded
        return
    now = data_fingerprint(config, table)
    if now != recorded:
        was = recorded.get("sha256", "?")[:12]
        raise UserError(
            f"resume {name}: data.source {config.data.source} changed since the sweep started "
            f"(sha256 {was}..., now {str(now.get('sha256', '?'))[:12]}...); start a new sweep instead"
        )


def _trainable(
    config: SweepConfig, plan: Plan, prepared: Prepared, builder: Any
) -> tuple[Any, Any]:
    """The trial function with its data (put once in Ray's object store) and resources; and its setup."""
    import ray
    from ray import tune

    from hindsight_ray.training.trainable import DataHandle, TrialSetup, train_lstm

    setup = TrialSetup(
        data=DataHandle(ray.put(prepared)),
        seed=config.seed,
        batch_size=config.model.batch_size,
        optimizer=config.model.optimizer,
        bidirectional=config.model.bidirectional,
        dropout=config.model.dropout,
        loss=config.model.loss,
        objective=config.objective,
        checkpoint_every=config.run.checkpoint_every,
        mixed_precision=config.resources.mixed_precision,
        checkpoint_seconds=config.run.checkpoint_seconds,
        deterministic=config.run.deterministic,
        backend=config.model.backend,
        builder=builder,
        report_seconds=report_seconds(config, plan),
    )
    trainable = tune.with_resources(
        tune.with_parameters(train_lstm, setup=setup),
        {"cpu": config.resources.cpus_per_trial, "gpu": config.resources.gpus_per_trial},
    )
    return trainable, setup


def report_seconds(config: SweepConfig, plan: Plan) -> float:
    """``run.report_seconds``, or 0 (every epoch reported) when an epoch budget or ASHA acts on each epoch's
    result: their decisions then fall on the same epochs however fast the machine is."""
    if search_budget(config, plan) is not None or "asha" in (
        config.search.strategy,
        config.search.stage1.early_stop,
    ):
        return 0.0
    return config.run.report_seconds


def _new_tuner(
    config: SweepConfig, plan: Plan, trainable: Any, slots: int, echo: Printer, callbacks: list[Any]
) -> Any:
    """A Tuner for a new sweep: the strategy's searcher and scheduler, the budget, the console callbacks."""
    from ray import tune

    from hindsight_ray.reporting.tensorboard_tracking import TensorBoardWriter
    from hindsight_ray.running.console import (
        DiskWatch,
        NoTuneReporter,
        Progress,
        ProgressCsvLogger,
        ResultJsonLogger,
        StageConsole,
        TrialClock,
        WarmBackend,
    )
    from hindsight_ray.search.strategies import EpochBudget, asha, build_strategy

    stage1, stage2 = config.search.stage1, config.search.stage2
    strategy = build_strategy(
        config.search.strategy,
        layers=stage1.layers,
        units=stage1.units,
        stage1_learning_rate=stage1.learning_rate,
        stage1_epochs=stage1.epochs,
        max_learning_rate=stage2.max_learning_rate,
        max_iterations=stage2.max_iterations,
        stage2_epochs=stage2.epochs,
        metric=SCORE_KEY,
        mode=config.mode,
        slots=slots,
        seed=config.seed,
        speculative=speculative_for(stage2.speculative, slots, config.resources),
        early_stop=asha(stage1.epochs) if stage1.early_stop == "asha" else None,
        manual=[m.model_dump() for m in config.search.manual] if config.search.manual else None,
    )
    console = StageConsole(
        config.objective,
        plan.stage1_trials,
        plan.stage2_trials,
        stage2.max_learning_rate,
        echo=echo,
    )
    budget = search_budget(config, plan)
    progress = Progress(
        config.objective, stage_epochs=stage_epochs(config, plan, budget), slots=slots, echo=echo
    )
    return tune.Tuner(
        trainable,
        param_space=strategy.param_space,
        tune_config=tune.TuneConfig(
            metric=SCORE_KEY,
            mode=config.mode,
            num_samples=strategy.num_samples,
            search_alg=strategy.search_alg,
            scheduler=strategy.scheduler,
            # a worker keeps TensorFlow imported between trials; each trial clears Keras' session
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=plan.name,
            **storage_options(plan.location.parent),
            stop=EpochBudget(budget, plan.experiment_dir) if budget else None,
            failure_config=tune.FailureConfig(max_failures=config.run.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=config.run.keep_checkpoints),
            progress_reporter=NoTuneReporter(),
            callbacks=[
                # Ray's own result.json and progress.csv loggers, keeping a restarted trial's lines
                ResultJsonLogger(),
                ProgressCsvLogger(),
                TrialClock(plan.experiment),
                DiskWatch(plan.experiment_dir),
                console,
                progress,
                *callbacks,
                *([] if ray_address(config) else [WarmBackend(config.model.backend)]),
                *(
                    [TensorBoardWriter(plan.experiment_dir, config.metric, config.mode)]
                    if plan.location.local
                    else []
                ),
                # local: test evaluation here
            ],
            verbose=0,
        ),
    )


class _TuneResumeHint(logging.Filter):
    """Drops Tune's "Resume experiment with: Tuner.restore(...)" after a stop: ours names the command."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore(" not in record.getMessage()


def _quiet_tune_resume_hint() -> None:
    tune_logger = logging.getLogger("ray.tune.tune")
    if not any(isinstance(f, _TuneResumeHint) for f in tune_logger.filters):
        tune_logger.addFilter(_TuneResumeHint())


def storage_options(location: ExperimentLocation) -> dict[str, Any]:
    """How Ray is told where a folder is: its pyarrow filesystem and the path inside it (a remote filesystem
    keeps the URI's endpoint, scheme and credentials; a local folder is written file by file atomically)."""
    if location.local:
        # each file Ray writes there appears whole: a full disk leaves the previous one
        from hindsight_ray.core.atomic_fs import atomic_local_filesystem

        return {"storage_path": location.path, "storage_filesystem": atomic_local_filesystem()}
    return {"storage_path": location.path, "storage_filesystem": location.fs}


def _fit(
    config: SweepConfig,
    plan: Plan,
    prepared: Prepared,
    slots: int,
    echo: Printer,
    *,
    resume: bool,
    report: bool,
    callbacks: list[Any] | None = None,
    builder: Any = None,
    began: float | None = None,
) -> _Finishing:
    # "done in" is the command's wall time
    began = time.time() if began is None else began
    from ray import tune

    # checkpoints every epoch force experiment snapshots often; that is expected here, not a warning
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # no "Configuration for experiment" box: our console says it
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    _quiet_tune_resume_hint()
    trainable, setup = _trainable(config, plan, prepared, builder)
    if resume:
        restore_options = storage_options(plan.location)
        tuner = tune.Tuner.restore(
            restore_options.pop("storage_path"),
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=False,
            **restore_options,
        )
    else:
        tuner = _new_tuner(config, plan, trainable, slots, echo, callbacks or [])
    # the best model's test evaluation then runs in this process
    local = not ray_address(config)
    import ray

    # over Ray Client, Tune runs in an actor on the head: this process's Ctrl-C is ours alone to catch
    client = ray.util.client.ray.is_connected()
    try:
        with interruptions(plan.experiment_dir, tune_here=not client) as watch:
            try:
                tuner.fit()
            except OSError as exc:
                # the driver's own writes (Ray's experiment state): a full disk, a lost mount
                if is_disk_full(exc):
                    # the same line as when a trial's checkpoint finds the disk full first
                    raise UserError(
                        f"cannot write {plan.experiment_dir}: {exc.strerror or 'No space left on device'}; free "
                        f"some space, then hindsight-ray resume {plan.experiment_dir}"
                    ) from None
                raise UserError(
                    f"writing the experiment {plan.experiment_dir} failed ({exc.strerror or exc}); fix "
                    f"the cause, then hindsight-ray resume {plan.experiment_dir}"
                ) from None
            except Exception as exc:
                # a trial found the storage full: stopped before Tune spent its retries
                full = disk_full_message(exc)
                if full is None:
                    raise
                raise UserError(full) from None
            # Tune returns normally after Ctrl-C: a half-run sweep is never finalized
            watch.raise_if_stopped()
    except Interrupted:
        if client:
            _stop_remote_tuner(tuner)
        raise
    finally:
        # WarmBackend's import, begun at the first trial result
        join_warming()
    store = plan.experiment
    policy = load_policy(store) if config.search.strategy == "two_stage" else None
    summary = finalize(config, store, prepared, None if local else setup.data.ref, policy)
    return _Finishing(config, store, summary, echo, began, report)


def disk_full_message(exc: BaseException) -> str | None:
    """The one line of a :class:`DiskFull` or :class:`UserError` raised inside Tune's run, also when Tune passed
    it on inside a ``TuneError``'s text."""
    if isinstance(exc, DiskFull | UserError):
        return str(exc)
    # raised in a Tune callback (ours, or our file writes there): Tune passes on only the traceback's text
    for kind in (DiskFull, UserError):
        marker = f"{kind.__module__}.{kind.__qualname__}: "
        for line in str(exc).splitlines():
            if line.startswith(marker):
                return line.removeprefix(marker)
    return None


def _stop_remote_tuner(tuner: Any) -> None:
    """Over Ray Client, end the head's Tune actor (and so its trials) at once: as after a driver crash, the
    experiment's last snapshot is where ``resume`` goes on, and no second Tune writes beside the resumed one."""
    import ray

    remote = getattr(tuner, "_remote_tuner", None)
    if remote is not None:
        try:
            ray.kill(remote)
        except Exception:  # noqa: BLE001 - the connection itself may be gone; the server then ends the actor
            pass


def tensorboard_hint(experiment: ExperimentLocation) -> str:
    """The closing line that opens the sweep's curves in TensorBoard (and how to get TensorBoard)."""
    import importlib.util

    from hindsight_ray.reporting.tensorboard_tracking import FOLDER

    where = f"{experiment.path}/{FOLDER}" if experiment.local else experiment.uri
    missing = (
        ""
        if importlib.util.find_spec("tensorboard")
        else " (pip install 'hindsight-ray[tensorboard]' first)"
    )
    return (
        f"tensorboard --logdir {shlex.quote(where)}  # every trial's curves, every epoch{missing}"
    )


class _Finishing:
    """A finalized sweep's report, drawn in the background from here on (while Ray shuts down), and its last
    lines; ``finish()`` waits for the drawing, prints them and returns the summary."""

    def __init__(
        self,
        config: SweepConfig,
        experiment: ExperimentStore,
        summary: Summary,
        echo: Printer,
        began: float,
        report: bool,
    ) -> None:
        from concurrent.futures import Future, ThreadPoolExecutor

        self.config, self.experiment, self.summary, self.echo, self.began = (
            config,
            experiment,
            summary,
            echo,
            began,
        )
        self.drawing: Future[str | None] | None = None
        if report:
            from hindsight_ray.reporting.report import write_sweep_report

            pool = ThreadPoolExecutor(1, thread_name_prefix="hindsight-report")
            self.drawing = pool.submit(write_sweep_report, experiment)
            # the thread ends with the drawing
            pool.shutdown(wait=False)

    def _finish_mlflow(self) -> None:
        """The sweep's scores, best trial and exported model on its MLflow parent run: one line, and one per
        error (the sweep's own results are written already)."""
        store = self.experiment
        tracker = mlflow_tracker(self.config, store, store.name)
        errors = tracker.finish(dict(self.summary), store.read_table(layout.TRIALS_FILE))
        state = tracker.state or {}
        self.echo(
            f"mlflow      run {self.experiment.name} ({state.get('parent_run_id', '?')}) in experiment "
            f"{tracker.experiment!r} at {tracker.tracking_uri or 'MLflow default tracking URI'}"
        )
        for error in errors[:5]:
            self.echo(f"mlflow      not logged: {error}")

    def _finish_wandb(self) -> None:
        """The sweep's run in its W&B group (scores, the trials' table, the model artifact): one line, and one
        per error."""
        store = self.experiment
        tracker = wandb_tracker(self.config, store, store.name)
        errors = tracker.finish(dict(self.summary), store.read_table(layout.TRIALS_FILE))
        where = f"project {tracker.project!r}, group {tracker.sweep!r}"
        if tracker.mode == "offline":
            runs = os.path.join(tracker.run_dir or ".", "wandb")
            where += f", offline: wandb sync {shlex.quote(runs)}/offline-run-* uploads them"
        self.echo(
            f"wandb       {len(tracker.state.get('runs', {}))} trial runs and the sweep's ({where})"
        )
        for error in errors[:5]:
            self.echo(f"wandb       not logged: {error}")

    def finish(self) -> Summary:
        written = self.drawing.result() if self.drawing is not None else None
        self.echo(
            f"results in {self.experiment} (trials.parquet, epochs.parquet, summary.json, best_model.keras)"
        )
        if written:
            self.echo(f"report      {written} (and report.html)")
        self.echo(tensorboard_hint(self.experiment.where))
        if "mlflow" in self.config.run.callbacks:
            self._finish_mlflow()
        if "wandb" in self.config.run.callbacks:
            self._finish_wandb()
        verdict = baseline_verdict(self.summary, self.config.objective)
        self.echo(
            f"done in {time.time() - self.began:.0f} s: best {describe_best(self.summary, self.config.objective)}"
            + (f"; {verdict}" if verdict else "")
        )
        return self.summary
