"""Results tables: busy time per node and GPU, atomic writes, epoch rows after restarts."""

from __future__ import annotations

import pandas as pd

from hindsight_ray.reporting.tables import TrialOutcome, busy_seconds, epochs_table, utilization


def test_busy_seconds_is_the_union_of_intervals():
    assert busy_seconds([]) == 0
    assert busy_seconds([(0, 2), (1, 3), (5, 6), (5.5, 5.7)]) == 4


def test_utilization_per_node_and_gpu():
    trials = pd.DataFrame({
        "started_at": [0.0, 0.0, 5.0, 0.0],
        "finished_at": [4.0, 2.0, 10.0, 10.0],
        "node_ip": ["10.0.0.1"] * 3 + ["10.0.0.2"],
        "node_id": ["aaaa1111xx"] * 3 + ["bbbb2222yy"],
        "gpu_ids": ["0", "0", "1", ""],
    })
    usage = utilization(trials, wall_s=10)
    assert usage["nodes"]["10.0.0.1 aaaa1111"]["busy_s"] == 9  # [0,4] and [5,10]
    assert usage["nodes"]["10.0.0.2 bbbb2222"]["busy_share"] == 1
    gpu0 = usage["gpus"]["10.0.0.1 aaaa1111 gpu0"]
    assert gpu0["busy_s"] == 4 and gpu0["trials"] == 2 and gpu0["trial_s"] == 6  # two trials packed on it
    assert set(usage["gpus"]) == {"10.0.0.1 aaaa1111 gpu0", "10.0.0.1 aaaa1111 gpu1"}


def test_epochs_after_a_restart_keep_the_last_report():
    outcome = TrialOutcome("t", {"stage": 1}, "TERMINATED",
                           [{"epoch": 1, "loss": 3.0}, {"epoch": 2, "loss": 2.0}, {"epoch": 2, "loss": 1.5},
                            {"epoch": 3, "loss": 1.0}], None)
    table = epochs_table([outcome])
    assert table.epoch.tolist() == [1, 2, 3] and table.loss.tolist() == [3.0, 1.5, 1.0]


def test_epochs_told_to_tune_together_are_each_a_row():
    """Millisecond epochs travel in the next report (run.report_seconds); epochs.parquet still has every one."""
    import json

    from hindsight_ray.core.trials import FOLDED_KEY, epoch_row

    first = {"epoch": 1, "loss": 3.0, "val_rmse": 9.0, "epoch_s": 0.01, "finished_at": 100.0, "params": 7}
    second = {"epoch": 2, "loss": 2.0, "val_rmse": 8.0, "epoch_s": 0.01, "finished_at": 100.5}
    assert epoch_row(first) == {"epoch": 1, "loss": 3.0, "val_rmse": 9.0, "epoch_s": 0.01, "timestamp": 100}
    folded = json.dumps([epoch_row(first), epoch_row(second)])
    results = [{"epoch": 3, "loss": 1.0, "val_rmse": 7.0, "timestamp": 101, FOLDED_KEY: folded},
               {"epoch": 4, "loss": 0.5, "val_rmse": 6.0, "timestamp": 102, FOLDED_KEY: ""}]
    table = epochs_table([TrialOutcome("t", {"stage": 2}, "TERMINATED", results, None)])
    assert table.epoch.tolist() == [1, 2, 3, 4] and table.val_rmse.tolist() == [9.0, 8.0, 7.0, 6.0]
    assert table.timestamp.tolist() == [100, 100, 101, 102] and (table.stage == 2).all()
    assert FOLDED_KEY not in table.columns


def test_a_trial_scored_on_an_epoch_that_was_folded_takes_its_other_metrics_from_that_epoch():
    import json

    from hindsight_ray.core.objective import Objective
    from hindsight_ray.core.trials import FOLDED_KEY, epoch_row
    from hindsight_ray.reporting.tables import trials_table

    epoch2 = {"epoch": 2, "loss": 1.0, "val_rmse": 5.0, "val_mae": 4.0, "epoch_s": 0.01, "finished_at": 10.0}
    last = {"epoch": 3, "loss": 0.9, "val_rmse": 6.0, "val_mae": 4.5, "score": 5.0, "score_epoch": 2,
            "best_epoch": 2, "started_at": 9.0, "finished_at": 10.2, "retries": 0, "timestamp": 10,
            FOLDED_KEY: json.dumps([epoch_row({**epoch2, "epoch": 1, "val_rmse": 7.0}), epoch_row(epoch2)])}
    outcome = TrialOutcome("t", {"stage": 1, "epochs": 3}, "TERMINATED", [last], None)
    row = trials_table([outcome], objective=Objective("val_rmse", "min"), strategy="grid").iloc[0]
    assert row.val_rmse == 5.0 and row.val_mae == 4.0 and row.last_val_rmse == 6.0
