"""Benchmark campaigns: strategies x datasets x seeds on equal budgets -> ``campaign.parquet`` + report."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from hindsight_ray.config.schema import STRATEGIES, apply_overrides, build_config, read_config_file
from hindsight_ray.core.errors import UserError
from hindsight_ray.core.experiment import ExperimentLocation, ExperimentStore
from hindsight_ray.core.layout import CAMPAIGN_FILE, SUMMARY_FILE, TRIALS_FILE
from hindsight_ray.core.objective import Objective
from hindsight_ray.reporting.report import anytime, seconds_to_within, write_campaign_report
from hindsight_ray.reporting.tables import parquet_bytes

_SET_BY_THE_CAMPAIGN = {"seed", "name", "storage", "search.strategy", "search.budget"}
CAMPAIGN_KEYS = {"name", "base", "strategies", "datasets", "seeds", "budget", "storage", "manual"}


def load_campaign(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """A campaign file, checked: every sweep config it implies is validated before anything runs."""
    raw = apply_overrides(read_config_file(path), overrides or [])
    unknown = sorted(set(raw) - CAMPAIGN_KEYS)
    if unknown:
        raise UserError(
            f"campaign {path}: unknown key {unknown[0]} (keys: {', '.join(sorted(CAMPAIGN_KEYS))})"
        )
    base = raw.get("base") or {}
    if isinstance(base, str):
        base_path = Path(base) if Path(base).is_absolute() else Path(path).parent / base
        base = read_config_file(base_path)
    if not isinstance(base, dict):
        raise UserError(
            f"campaign {path}: base must be a config mapping or the path of a config file"
        )
    for key in ("strategies", "datasets", "seeds"):
        given = raw.get(key, "unset")
        if given is None or (isinstance(given, list | dict) and not given):
            raise UserError(
                f"campaign {path}: {key} is empty; list at least one (or leave the key out for the default)"
            )
    strategies = raw.get("strategies", ["two_stage"])
    if not isinstance(strategies, list) or not all(isinstance(s, str) for s in strategies):
        raise UserError(f"campaign {path}: strategies must be a list of strategy names")
    bad = [s for s in strategies if s not in STRATEGIES]
    if bad:
        raise UserError(
            f"campaign {path}: unknown strategy {bad[0]!r} (have: {', '.join(STRATEGIES)})"
        )
    datasets = raw.get("datasets", {"default": {}})
    if not isinstance(datasets, dict) or not all(
        isinstance(v, dict | type(None)) for v in datasets.values()
    ):
        raise UserError(
            f"campaign {path}: datasets must map a name to config overrides (dotted keys)"
        )
    for dataset, settings in datasets.items():
        taken = sorted(_set_by_the_campaign(settings or {}))
        if taken:
            raise UserError(
                f"campaign {path}: datasets.{dataset} sets {taken[0]}, which the campaign sets for every sweep "
                "(use the campaign's seeds, strategies, budget, storage or name)"
            )
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(_whole(s) and s >= 0 for s in seeds):
        raise UserError(f"campaign {path}: seeds must be a non-empty list of non-negative integers")
    for key, values in (("strategies", strategies), ("seeds", seeds)):
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            raise UserError(
                f"campaign {path}: {key} lists {repeated[0]} twice; each would plan the same sweeps again"
            )
    budget = raw.get("budget", "two_stage")
    budgets = budget if isinstance(budget, list) else [budget]
    for one in budgets or [None]:
        if one != "two_stage" and not (_whole(one) and one > 0):
            raise UserError(
                f"campaign {path}: budget must be two_stage (the trial-epochs two_stage used), a "
                "positive number of trial-epochs, or a list of those"
            )
    if "two_stage" in budgets and "two_stage" not in strategies:
        raise UserError(f"campaign {path}: budget two_stage needs two_stage among the strategies")
    if len(set(map(str, budgets))) != len(budgets):
        raise UserError(f"campaign {path}: budget lists {budgets}, with a repeat")
    name = raw.get("name") or Path(path).stem
    for label, value in [("name", name), *(("dataset name", key) for key in datasets)]:
        if (
            not isinstance(value, str)
            or not value
            or "/" in value
            or "\\" in value
            or value in (".", "..")
        ):
            raise UserError(
                f"campaign {path}: {label} {value!r} must be a plain folder name (it names a folder under storage)"
            )
    campaign: dict[str, Any] = {
        "name": name,
        "base": base,
        "strategies": strategies,
        "datasets": {k: v or {} for k, v in datasets.items()},
        "seeds": seeds,
        "budgets": budgets,
        "storage": raw.get("storage") or base.get("storage") or "./hindsight_results",
        "manual": raw.get("manual"),
    }
    for dataset in campaign["datasets"]:
        for strategy in strategies:
            # validates every combination
            sweep_config(campaign, dataset, strategy, seeds[0], budget=1)
    return campaign


def _set_by_the_campaign(settings: dict[str, Any], prefix: str = "") -> list[str]:
    """The keys of a dataset's overrides (dotted or nested) that the campaign itself sets for each sweep."""
    found = []
    for key, value in settings.items():
        dotted = f"{prefix}{key}"
        if dotted in _SET_BY_THE_CAMPAIGN or any(
            dotted.startswith(f"{k}.") for k in _SET_BY_THE_CAMPAIGN
        ):
            found.append(dotted)
        elif isinstance(value, dict):
            found += _set_by_the_campaign(value, f"{dotted}.")
    return found


def _whole(value: Any) -> bool:
    """An integer that is not a boolean (YAML reads ``true`` as a bool, which Python counts as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def sweep_config(
    campaign: dict[str, Any],
    dataset: str,
    strategy: str,
    seed: int,
    budget: int | None,
    row: int = 0,
):
    """The sweep config of one campaign cell; ``row`` is the index of its budget in the campaign's list
    (two_stage runs the same sweep on every row, so its cell is shared)."""
    suffix = "" if row == 0 or strategy == "two_stage" else f"-b{campaign['budgets'][row]}"
    overrides = [f"{k}={_yaml(v)}" for k, v in campaign["datasets"][dataset].items()]
    literal: dict[str, Any] = {
        "search.strategy": strategy,
        "seed": seed,
        "name": f"{dataset}-{strategy}-s{seed}{suffix}",
        "storage": campaign_location(campaign).uri,
    }
    if budget is not None and strategy != "two_stage":
        literal["search.budget"] = budget
    if strategy == "manual":
        literal["search.manual"] = campaign["manual"]
    return build_config(apply_overrides(campaign["base"], overrides, literal))


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def cell_row(
    experiment_dir: str | ExperimentLocation, dataset: str, strategy: str, seed: int
) -> tuple[dict[str, Any], pd.DataFrame]:
    """One row of campaign.parquet from a finished sweep, and its anytime curve."""
    store = ExperimentStore(experiment_dir)
    summary = store.read_mapping(SUMMARY_FILE, "a sweep summary")
    trials = store.read_table(TRIALS_FILE)
    metric, mode = summary["metric"], summary["mode"]
    curve = anytime(trials, metric, mode)
    best = summary.get("best") or {}
    final = best.get("validation")
    key = Objective(metric, mode).test_key.removeprefix("test_")
    # each baseline's test score, beside the strategy's (NaN where one failed)
    baselines = {
        f"baseline_{name}": scores.get(key)
        for name, scores in (summary.get("baselines") or {}).items()
    }
    return {
        "dataset": dataset,
        "strategy": strategy,
        "seed": seed,
        "metric": metric,
        "best_val": final,
        "test": best.get(Objective(metric, mode).test_key),
        "layers": best.get("layers"),
        "units": best.get("units"),
        "learning_rate": best.get("learning_rate"),
        "trial_epochs": summary["trial_epochs"],
        "budget": summary.get("budget"),
        "trial_s": summary["trial_s"],
        "wall_s": summary["wall_s"],
        "trials": summary["trials_run"],
        "to_within_1pct_s": seconds_to_within(curve, final, mode),
        **baselines,
        "experiment": str(experiment_dir),
    }, curve


def campaign_location(campaign: dict[str, Any]) -> ExperimentLocation:
    """The campaign's folder: its name joined into the storage path (a URI's query stays last)."""
    return ExperimentLocation.parse(campaign["storage"]).join(campaign["name"])


def _run_cell(config: Any, label: str, echo: Callable[[str], None]) -> ExperimentLocation:
    """Run (or resume, or keep) one campaign cell; its experiment dir."""
    from hindsight_ray.running.plan import make_plan
    from hindsight_ray.running.runner import resume_sweep, run_sweep

    plan = make_plan(config)
    cell = ExperimentStore(plan.location)
    if cell.exists(SUMMARY_FILE):
        echo(f"campaign: {label}: finished before, kept")
    elif cell.exists():
        echo(f"campaign: {label}: resuming")
        resume_sweep(plan.location, echo=lambda line: None)
    else:
        echo(f"campaign: {label}: running")
        run_sweep(config, echo=lambda line: None)
    return plan.location


def run_campaign(campaign: dict[str, Any], echo: Callable[[str], None] = print) -> pd.DataFrame:
    """Run every cell not finished yet, one after another on one Ray; write campaign.parquet and report.md.

    Each budget in the campaign's list is a row of cells: every strategy on that many trial-epochs
    (``two_stage``: what two_stage used on that dataset and seed; two_stage itself runs once)."""
    import ray

    from hindsight_ray.running.cluster import start_ray

    folder = campaign_location(campaign)
    store = ExperimentStore(folder)
    base = build_config(campaign["base"])
    owns_ray = start_ray(base)
    rows: list[dict[str, Any]] = []
    curves: dict[tuple[str, str, str, int], Any] = {}
    began = time.time()
    # two_stage sets the budget
    order = sorted(campaign["strategies"], key=lambda s: s != "two_stage")
    try:
        for dataset in campaign["datasets"]:
            for seed in campaign["seeds"]:
                # trial-epochs of two_stage on this dataset and seed
                used = None
                for index, label in enumerate(campaign["budgets"]):
                    for strategy in order:
                        budget = used if label == "two_stage" else int(label)
                        config = sweep_config(campaign, dataset, strategy, seed, budget, row=index)
                        where = f"{dataset} {strategy} seed {seed}" + (
                            f" budget {label}" if len(campaign["budgets"]) > 1 else ""
                        )
                        experiment = _run_cell(config, where, echo)
                        row, curve = cell_row(experiment, dataset, strategy, seed)
                        if strategy == "two_stage":
                            used = int(row["trial_epochs"])
                        row["budget_row"] = str(label)
                        rows.append(row)
                        curves[(str(label), dataset, strategy, seed)] = curve
                        echo(
                            f"  best {row['metric']}={row['best_val']:.4g} test={row['test']:.4g} "
                            f"trial-epochs={row['trial_epochs']} trial-s={row['trial_s']:.1f}"
                        )
    finally:
        if owns_ray:
            ray.shutdown()
    table = pd.DataFrame(rows)
    store.write_bytes(CAMPAIGN_FILE, parquet_bytes(table))
    metric, mode = base.metric, base.mode
    header = [
        f"# Campaign {campaign['name']}",
        "",
        f"Run {date.today().isoformat()} on {platform.node()} ({platform.machine()}, "
        f"{_cpu_count()} cores), Python {platform.python_version()}; {len(rows)} rows, "
        f"{time.time() - began:.0f} s for the cells run this time.",
        f"Budgets: {', '.join(map(str, campaign['budgets']))} (trial-epochs per sweep; `two_stage` = what "
        "two_stage used on that dataset and seed). Scores are validation (selection, by "
        f"`search.score: {base.search.score}`) and test (the best model, once).",
        f"Metric: `{metric}` ({mode}). `to_within_1pct_s`: trial-seconds until the best-so-far came within "
        "1% of that sweep's final best.",
    ]
    write_campaign_report(folder, table, curves, metric, mode, header)
    echo(f"campaign: results in {store.path(CAMPAIGN_FILE)} and {store.path('report.md')}")
    return table


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 0
