"""Campaigns end to end on a tiny budget: every strategy, equal budgets, re-runs that redo nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from hindsight_ray.config.campaign import load_campaign
from hindsight_ray.core.errors import UserError

TINY = {
    "name": "tiny",
    # one trial at a time: every cell then starts one trial worker (with its TensorFlow), not one per slot
    "base": {"data": {"lags": 6}, "resources": {"max_concurrent": 1},
             "search": {"stage1": {"layers": [1], "units": [4], "epochs": 2},
                        "stage2": {"max_iterations": 1, "epochs": 3}}},
    "strategies": ["two_stage", "grid", "random", "manual", "bayes", "asha"],
    "manual": [{"layers": 1, "units": 4, "learning_rate": 0.01}, {"layers": 1, "units": 8, "learning_rate": 0.005}],
    "datasets": {"airline": {"data.source": "builtin:airline"}},
    "seeds": [0],
    "budget": "two_stage",
}


def write(tmp_path, campaign) -> str:
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump({**campaign, "storage": str(tmp_path / "out")}))
    return str(path)


@pytest.mark.parametrize(("change", "message"), [
    ({"strategies": ["two_stage", "annealing"]}, "unknown strategy 'annealing'"),
    ({"seeds": []}, "seeds is empty"),
    ({"strategies": []}, "strategies is empty"),
    ({"datasets": {}}, "datasets is empty"),
    ({"strategies": None}, "strategies is empty"),
    ({"strategies": ["grid", "random", "grid"]}, "strategies lists grid twice"),
    ({"seeds": [0, 1, 0]}, "seeds lists 0 twice"),
    ({"datasets": {"airline": {"seed": 4}}}, "datasets.airline sets seed, which the campaign sets"),
    ({"datasets": {"airline": {"search.strategy": "grid"}}}, "sets search.strategy"),
    ({"datasets": {"airline": {"search": {"budget": 40}}}}, "sets search.budget"),
    ({"datasets": {"airline": {"storage": "/elsewhere"}}}, "sets storage"),
    ({"datasets": {"airline": {"name": "x"}}}, "sets name"),
    ({"budget": -3}, "budget must be two_stage"),
    ({"budget": [True]}, "budget must be two_stage"),
    ({"budget": True}, "budget must be two_stage"),
    ({"seeds": 5}, "seeds must be a non-empty list"),
    ({"seeds": [True]}, "seeds must be a non-empty list"),
    ({"name": "../../x"}, "must be a plain folder name"),
    ({"datasets": {"a/b": {}}}, "dataset name 'a/b' must be a plain folder name"),
    ({"budget": ["two_stage", 50, 50]}, "with a repeat"),
    ({"budget": "two_stage", "strategies": ["grid"]}, "needs two_stage among the strategies"),
    ({"datasets": {"airline": {"data.lag": 3}}}, "unknown config key data.lag"),
    ({"colour": "red"}, "unknown key colour"),
    ({"manual": None}, "search.strategy manual needs search.manual"),
])
def test_bad_campaigns_are_refused_before_anything_runs(tmp_path, change, message):
    with pytest.raises(UserError, match=message):
        load_campaign(write(tmp_path, {**TINY, **change}))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_campaign_runs_every_strategy_on_an_equal_budget_and_reruns_nothing(tmp_path):
    path = write(tmp_path, TINY)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    first = subprocess.run([sys.executable, "-m", "hindsight_ray", "campaign", path], capture_output=True, text=True,
                           timeout=900, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    folder = tmp_path / "out" / "tiny"
    table = pd.read_parquet(folder / "campaign.parquet")
    assert sorted(table.strategy) == sorted(TINY["strategies"])
    budget = int(table.set_index("strategy").trial_epochs["two_stage"])
    assert budget == 2 + 2 * 3  # one stage-1 trial of 2 epochs, K = 2 stage-2 trials of 3
    for _, row in table.iterrows():
        assert row.trial_epochs <= budget + 3  # at most one trial's worth over, cut by the budget stopper
        assert row.best_val > 0 and row.test > 0 and row.trials >= 1 and row.trial_s > 0
        assert row.to_within_1pct_s is None or 0 < row.to_within_1pct_s <= row.trial_s + 1e-9
    assert set(table[table.strategy != "two_stage"].budget) == {budget}
    report = (folder / "report.md").read_text()
    assert "| dataset | strategy |" in report and (folder / "anytime_airline.png").stat().st_size > 1000
    assert {"baseline_persistence", "baseline_seasonal_naive", "baseline_sarima", "baseline_ets"} <= set(table.columns)
    # one model for every strategy's same test windows (15.696 with statsmodels 0.15.0; earlier installs rounded to 15.69)
    assert table.baseline_sarima.nunique() == 1 and table.baseline_sarima.iloc[0] == pytest.approx(15.69, abs=0.05)
    assert "| dataset | persistence | seasonal naive | sarima | ets | best strategy (mean test) |" in report
    sweep_report = (folder / "airline-two_stage-s0" / "report.md").read_text()
    assert "stage1_heatmap.png" in sweep_report and (folder / "airline-two_stage-s0" / "timeline.png").exists()

    stamps = {p: p.stat().st_mtime_ns for p in folder.glob("*/summary.json")}
    again = subprocess.run([sys.executable, "-m", "hindsight_ray", "campaign", path], capture_output=True,
                           text=True, timeout=300, env=env)
    assert again.returncode == 0 and again.stdout.count("finished before, kept") == len(TINY["strategies"])
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*/summary.json")} == stamps


def test_dataset_names_are_taken_literally(tmp_path):

    campaign = load_campaign(write(tmp_path, {**TINY, "datasets": {"air #1": {}, "air": {}}}))
    names = {campaign.cell_config(d, "grid", 0, budget=5).name for d in campaign.datasets}
    assert names == {"air #1-grid-s0", "air-grid-s0"}
