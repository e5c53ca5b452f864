"""Benchmark campaigns: strategies x datasets x seeds on equal budgets -> ``campaign.parquet`` + report."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import pandas as pd

from hindsight_ray.config.campaign import CampaignConfig
from hindsight_ray.config.schema import build_config
from hindsight_ray.core.experiment import ExperimentStore
from hindsight_ray.core.layout import CAMPAIGN_FILE, SUMMARY_FILE, TRIALS_FILE
from hindsight_ray.core.objective import Objective
from hindsight_ray.reporting.report import anytime, seconds_to_within, write_campaign_report
from hindsight_ray.reporting.tables import parquet_bytes


def cell_row(
    store: ExperimentStore, dataset: str, strategy: str, seed: int
) -> tuple[dict[str, Any], pd.DataFrame]:
    """One row of campaign.parquet from a finished sweep, and its anytime curve."""
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
        "experiment": store.uri,
    }, curve


def _run_cell(config: Any, label: str, echo: Callable[[str], None]) -> ExperimentStore:
    """Run (or resume, or keep) one campaign cell; its experiment."""
    from hindsight_ray.running.plan import make_plan
    from hindsight_ray.running.runner import resume_sweep, run_sweep

    plan = make_plan(config)
    cell = plan.experiment
    if cell.exists(SUMMARY_FILE):
        echo(f"campaign: {label}: finished before, kept")
    elif cell.exists():
        echo(f"campaign: {label}: resuming")
        resume_sweep(cell.where, echo=lambda line: None)
    else:
        echo(f"campaign: {label}: running")
        run_sweep(config, echo=lambda line: None)
    return cell


def run_campaign(campaign: CampaignConfig, echo: Callable[[str], None] = print) -> pd.DataFrame:
    """Run every cell not finished yet, one after another on one Ray; write campaign.parquet and report.md.

    Each budget in the campaign's list is a row of cells: every strategy on that many trial-epochs
    (``two_stage``: what two_stage used on that dataset and seed; two_stage itself runs once)."""
    import ray

    from hindsight_ray.running.cluster import start_ray

    folder = campaign.folder
    store = ExperimentStore(folder)
    base = build_config(campaign.base)
    owns_ray = start_ray(base)
    rows: list[dict[str, Any]] = []
    curves: dict[tuple[str, str, str, int], Any] = {}
    began = time.time()
    # two_stage sets the budget
    order = sorted(campaign.strategies, key=lambda s: s != "two_stage")
    try:
        for dataset in campaign.datasets:
            for seed in campaign.seeds:
                # trial-epochs of two_stage on this dataset and seed
                used = None
                for index, label in enumerate(campaign.budgets):
                    for strategy in order:
                        budget = used if label == "two_stage" else int(label)
                        config = campaign.cell_config(dataset, strategy, seed, budget, row=index)
                        where = f"{dataset} {strategy} seed {seed}" + (
                            f" budget {label}" if len(campaign.budgets) > 1 else ""
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
        f"# Campaign {campaign.name}",
        "",
        f"Run {date.today().isoformat()} on {platform.node()} ({platform.machine()}, "
        f"{_cpu_count()} cores), Python {platform.python_version()}; {len(rows)} rows, "
        f"{time.time() - began:.0f} s for the cells run this time.",
        f"Budgets: {', '.join(map(str, campaign.budgets))} (trial-epochs per sweep; `two_stage` = what "
        "two_stage used on that dataset and seed). Scores are validation (selection, by "
        f"`search.score: {base.search.score}`) and test (the best model, once).",
        f"Metric: `{metric}` ({mode}). `to_within_1pct_s`: trial-seconds until the best-so-far came within "
        "1% of that sweep's final best.",
    ]
    write_campaign_report(store, table, curves, metric, mode, header)
    echo(f"campaign: results in {store.path(CAMPAIGN_FILE)} and {store.path('report.md')}")
    return table


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 0
