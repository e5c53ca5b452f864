"""Results tables: busy time per node and GPU, atomic writes, epoch rows after restarts."""

from __future__ import annotations

import pandas as pd

from hindsight_ray.results import TrialOutcome, busy_seconds, epochs_table, utilization


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
