"""``hr.load`` reads the folder it is given: a moved or copied experiment never reads the one at its old path."""

from __future__ import annotations

import json
import shutil

import pandas as pd

import hindsight_ray as hr


def write_experiment(folder, trial_ids):
    folder.mkdir(parents=True)
    pd.DataFrame({"trial_id": trial_ids}).to_parquet(folder / "trials.parquet")
    pd.DataFrame({"trial_id": trial_ids, "epoch": 1}).to_parquet(folder / "epochs.parquet")
    (folder / "summary.json").write_text(json.dumps({"experiment_dir": str(folder), "best": {"trial_id": trial_ids[0]}}))


def test_a_moved_experiment_reads_its_own_files(tmp_path):
    old, new = tmp_path / "old", tmp_path / "moved"
    write_experiment(old, ["mine"])
    shutil.move(old, new)
    write_experiment(old, ["someone-else"])  # another experiment now where the first one was
    result = hr.load(new)
    assert result.experiment_dir == str(new)
    assert list(result.trials.trial_id) == ["mine"] and list(result.epochs.trial_id) == ["mine"]
    assert result.best["trial_id"] == "mine"
