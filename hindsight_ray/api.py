"""The Python API: run, resume and load sweeps from a notebook or a script.

```python
import hindsight_ray as hr
result = hr.sweep(overrides=["search.stage1.units=[8,16]"])          # the embedded default, smaller
result = hr.sweep("sweep.yaml", data=frame, name="sales-v2")         # a DataFrame instead of data.source
result.best, result.summary, result.trials, result.epochs            # dicts and DataFrames
hr.resume(result.experiment_dir, data=frame)                         # the same frame, or it is refused
hr.load(result.experiment_dir)                                       # a finished sweep, later
```

Mistakes raise :class:`hindsight_ray.UserError` (one line); Ctrl-C raises
:class:`hindsight_ray.Interrupted` after Tune stopped, with nothing finalized (``resume`` goes on).
The command line is a thin shell over these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pandas as pd

from hindsight_ray.config.campaign import CampaignConfig
from hindsight_ray.config.schema import (
    SweepConfig,
    apply_overrides,
    build_config,
    read_config_file,
    value_origins,
    with_origins,
)
from hindsight_ray.core.errors import UserError
from hindsight_ray.core.experiment import ExperimentStore
from hindsight_ray.core.layout import EPOCHS_FILE, SUMMARY_FILE, TRIALS_FILE
from hindsight_ray.data.sources import DATAFRAME
from hindsight_ray.reporting.predictor import Predictor
from hindsight_ray.reporting.tables import Best, Summary
from hindsight_ray.running.plan import Plan

ConfigLike = SweepConfig | dict[str, Any] | str | Path | None


@dataclass
class SweepResult:
    """A finished sweep: where it is, its summary, and its tables (read on first use)."""

    experiment_dir: str
    summary: Summary
    _tables: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    # the folder's files (made once from ``experiment_dir``, or handed over by ``load``)
    experiment: ExperimentStore = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.experiment is None:
            self.experiment = ExperimentStore(self.experiment_dir)

    @property
    def best(self) -> Best | None:
        """The chosen trial: its config, the epoch its model comes from, validation and test scores."""
        return self.summary.get("best")

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial (``trials.parquet``)."""
        return self._table(TRIALS_FILE)

    @property
    def epochs(self) -> pd.DataFrame:
        """One row per trial and epoch (``epochs.parquet``)."""
        return self._table(EPOCHS_FILE)

    def predictor(self, backend: str | None = None) -> Predictor:
        """The best model with its preprocessing: raw data in, predictions in the data's terms out; on Keras'
        ``backend`` (default: the one Keras runs on here, else the sweep's)."""
        return Predictor.load(self.experiment, backend)

    def __repr__(self) -> str:
        """One line a notebook shows for the result: where, how many trials, the best (not the whole summary)."""
        from hindsight_ray.core.objective import Objective
        from hindsight_ray.running.finalize import describe_best

        summary = self.summary
        try:
            best = describe_best(summary, Objective(summary["metric"], summary["mode"]))
        except (KeyError, TypeError, ValueError):
            best = "?"
        return f"SweepResult({self.experiment_dir!r}: {summary.get('trials_run', '?')} trials, best {best})"

    def _table(self, name: str) -> pd.DataFrame:
        if name not in self._tables:
            self._tables[name] = self.experiment.read_table(name)
        return self._tables[name]


def resolve_config(
    config: ConfigLike = None,
    overrides: Sequence[str] | None = None,
    literal: dict[str, Any] | None = None,
) -> SweepConfig:
    """A validated config from a YAML path, a mapping, a ``SweepConfig`` or None (the default), with
    ``--set``-style overrides (values parsed as YAML) and literal settings (taken as given)."""
    before: dict[str, str] | None = None
    if isinstance(config, SweepConfig):
        raw = config.model_dump(mode="json")
        before = dict(config._origins)
        for key, origin in before.items():
            # a dataset's own defaults go with it if the source changes
            if origin.startswith("dataset "):
                raw["data"].pop(key, None)
    elif isinstance(config, dict):
        raw = config
    elif isinstance(config, str | Path):
        raw = read_config_file(config)
    elif config is None:
        raw = {}
    else:
        raise UserError(
            f"config must be a path, a mapping or a SweepConfig, got {type(config).__name__}"
        )
    resolved = build_config(apply_overrides(raw, list(overrides or []), literal))
    return with_origins(resolved, value_origins(raw, list(overrides or []), literal, before))


def explain_config(
    config: ConfigLike = None,
    overrides: list[str] | None = None,
    literal: dict[str, Any] | None = None,
) -> list[str]:
    """The effective config as YAML lines, each value with where it came from (``hindsight-ray config``):
    ``--set``, ``argument``, ``config <file>`` (or ``config``), ``dataset builtin:NAME``, ``default``."""
    from hindsight_ray.config.reference import effective_lines, sources

    resolved = resolve_config(config, overrides, literal)
    if isinstance(config, str | Path):
        raw, origin = read_config_file(config), f"config {config}"
    elif isinstance(config, dict):
        raw, origin = config, "config"
    elif isinstance(config, SweepConfig):
        raw, origin = config.model_dump(mode="json", exclude_defaults=True), "config"
    else:
        raw, origin = {}, "config"
    return effective_lines(resolved, sources(raw, list(overrides or []), literal, origin))


def sweep(
    config: ConfigLike = None,
    *,
    data: pd.DataFrame | None = None,
    overrides: Sequence[str] | None = None,
    name: str | None = None,
    storage: str | None = None,
    callbacks: Sequence[Any] | None = None,
    model_builder: Callable[..., Any] | None = None,
    echo: Callable[[str], None] = print,
    report: bool = True,
) -> SweepResult:
    """Run a sweep to the end. ``data``: a DataFrame to use instead of ``data.source`` (it goes into Ray's
    object store; ``config.json`` keeps its fingerprint, never its rows). ``callbacks``: Ray Tune
    callbacks (``ray.tune.Callback``, e.g. MLflow's or W&B's) attached to the run.
    ``model_builder(spec, layers, units, learning_rate, seed)`` returns a compiled ``keras.Model`` that
    replaces the LSTM (``model.builder: "package.module:function"`` in a config)."""
    from hindsight_ray.running.runner import run_sweep

    literal: dict[str, Any] = {"name": name, "storage": storage}
    if data is not None:
        # a DataFrame is its own source: no bundled dataset's preprocessing applies to it
        literal["data.source"] = DATAFRAME
    resolved = resolve_config(config, overrides, literal)
    summary = run_sweep(
        resolved,
        echo=echo,
        report=report,
        table=data,
        callbacks=list(callbacks or []),
        model_builder=model_builder,
    )
    return SweepResult(summary["experiment_dir"], summary)


def plan(
    config: ConfigLike = None,
    *,
    data: pd.DataFrame | None = None,
    overrides: Sequence[str] | None = None,
    name: str | None = None,
    storage: str | None = None,
    echo: Callable[[str], None] = print,
) -> Plan:
    """The dry run of :func:`sweep` with the same arguments: every check a sweep makes before training
    (config, data, storage, this machine), the plan printed; nothing is written, Ray does not start."""
    from hindsight_ray.running.runner import plan_sweep

    literal: dict[str, Any] = {"name": name, "storage": storage}
    if data is not None:
        literal["data.source"] = DATAFRAME
    return plan_sweep(resolve_config(config, overrides, literal), echo=echo, table=data)


def resume(
    experiment_dir: str | Path,
    *,
    data: pd.DataFrame | None = None,
    overrides: Sequence[str] | None = None,
    model_builder: Callable[..., Any] | None = None,
    echo: Callable[[str], None] = print,
) -> SweepResult:
    """Finish an interrupted sweep (a finished one is returned as it is). A sweep that ran on a DataFrame
    needs the same frame again: other data is refused. ``overrides`` must agree with the recorded config."""
    from hindsight_ray.running.runner import resume_sweep

    summary = resume_sweep(
        str(experiment_dir),
        list(overrides or []),
        echo=echo,
        table=data,
        model_builder=model_builder,
    )
    return SweepResult(summary["experiment_dir"], summary)


def load(experiment_dir: str | Path) -> SweepResult:
    """A finished sweep's results; an unfinished one is an error that says to resume it."""
    store = ExperimentStore(str(experiment_dir))
    if not store.exists(SUMMARY_FILE):
        raise UserError(
            f"{experiment_dir}: no {SUMMARY_FILE}; the sweep has not finished (resume it first)"
        )
    summary = store.read_mapping(SUMMARY_FILE, "a sweep summary")
    # the folder given, never the one recorded: a moved or copied experiment reads its own files
    return SweepResult(store.uri, cast(Summary, summary), experiment=store)


def load_campaign(path: str | Path, overrides: list[str] | None = None) -> CampaignConfig:
    """A benchmark campaign file, checked (every sweep it plans is validated); nothing runs."""
    from hindsight_ray.config.campaign import load_campaign as load

    return load(path, overrides)


def run_campaign(campaign: CampaignConfig, echo: Callable[[str], None] = print) -> pd.DataFrame:
    """Run every cell of ``campaign`` not finished yet; ``campaign.parquet`` and its report."""
    from hindsight_ray.running.campaign import run_campaign as run

    return run(campaign, echo)


def report(experiment_dir: str | Path) -> str:
    """(Re)write ``report.md``, its plots and ``report.html`` beside a finished sweep's tables; the
    report's path. A folder that is no finished experiment, or a damaged one, is one ``UserError``."""
    from hindsight_ray.reporting.report import write_sweep_report

    store = ExperimentStore(experiment_dir)
    if not store.exists(SUMMARY_FILE):
        raise UserError(
            f"{experiment_dir}: no {SUMMARY_FILE}; the sweep has not finished (resume it first)"
        )
    try:
        return write_sweep_report(store)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        # a corrupt summary, a foreign or damaged folder
        detail = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise UserError(
            f"{experiment_dir}: not a finished hindsight-ray experiment, or a damaged one "
            f"({type(exc).__name__}: {detail})"
        ) from exc


def predict_file(
    experiment_dir: str | Path,
    data: str | Path,
    out: str | Path | None = None,
    backend: str | None = None,
) -> pd.DataFrame:
    """A finished sweep's predictions for the raw rows of a CSV or Parquet file: a series' forecasts, or
    each text beside its class probabilities. With ``out`` (.csv or .parquet, outside the experiment)
    they are also written there, whole or not at all."""
    from hindsight_ray.data.sources import read_table
    from hindsight_ray.reporting.tables import parquet_bytes

    target = Path(out) if out is not None else None
    if target is not None and target.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise UserError(f"--out {target}: use a .csv or .parquet file")
    experiment = str(experiment_dir)
    if (
        target is not None
        and "://" not in experiment
        and Path(experiment).expanduser().resolve()
        in (target.resolve().parent, *target.resolve().parent.parents)
    ):
        raise UserError(
            f"--out {target}: that is inside the experiment {experiment}; write elsewhere"
        )
    source = Path(data).expanduser()
    if not source.is_file():
        raise UserError(f"--data {data}: file not found")
    frame = read_table(source, f"--data {data}")
    predictor = Predictor.load(experiment, backend)
    predicted = predictor.predict(frame)
    if not isinstance(predicted, pd.DataFrame):
        # text: probabilities beside the rows they belong to
        columns = predictor.classes if predicted.ndim == 2 else [f"p_{predictor.classes[1]}"]
        probabilities = pd.DataFrame(predicted.reshape(len(frame), -1), columns=columns)
        predicted = pd.concat([frame.reset_index(drop=True), probabilities], axis=1)
    if target is not None:
        written = (
            predicted.to_csv(index=False).encode()
            if target.suffix.lower() == ".csv"
            else parquet_bytes(predicted)
        )
        # atomic: never half a file
        ExperimentStore(str(target.parent.resolve())).write_bytes(target.name, written)
    return predicted


def datasets() -> list[str]:
    """What ``hindsight-ray datasets`` prints: each bundled dataset, its span, source and the
    preprocessing it brings."""
    from hindsight_ray.config.schema import DATASET_DEFAULTS
    from hindsight_ray.data import BUILTINS, builtin_path

    lines = []
    for dataset in BUILTINS.values():
        frame = pd.read_csv(builtin_path(dataset))
        span = f"{frame[dataset.date_column].iloc[0]} to {frame[dataset.date_column].iloc[-1]}"
        lines.append(
            f"builtin:{dataset.name:<10} {len(frame):>4} rows  {dataset.frequency:<8} {span}"
        )
        lines.append(f"    {dataset.description}")
        lines.append(f"    source: {dataset.source}")
        defaults = DATASET_DEFAULTS.get(f"builtin:{dataset.name}") or {}
        shown = ", ".join(f"data.{key}: {str(value).lower()}" for key, value in defaults.items())
        lines.append(
            f"    preprocessing by default: {shown or 'none beyond the global defaults'} "
            "(any key can be overridden)"
        )
    lines.append(
        "builtin:imdb     50000 reviews  (text) Keras' pre-tokenized IMDB reviews, downloaded on first use"
    )
    lines.append("    source: Maas et al. (2011), Large Movie Review Dataset, as packaged by Keras")
    return lines
