"""The console's heartbeat: elapsed, trials per stage, best so far, time left; tested on stand-in trials."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hindsight_ray.console import Progress
from hindsight_ray.objective import Objective


@dataclass
class FakeTrial:
    """What the console reads of a Tune trial."""

    status: str
    config: dict[str, Any]
    last_result: dict[str, Any] = field(default_factory=dict)


def test_the_heartbeat_counts_stages_names_running_epochs_and_estimates_time_left():
    progress = Progress(Objective("val_rmse", "min"), stage_epochs={1: (4, 10), 2: (3, 20)}, slots=2)
    trials = [
        FakeTrial("TERMINATED", {"stage": 1, "layers": 1, "units": 8, "epochs": 10},
                  {"epoch": 10, "score": 30.0, "started_at": 100.0, "finished_at": 105.0}),
        FakeTrial("TERMINATED", {"stage": 1, "layers": 1, "units": 16, "epochs": 10},
                  {"epoch": 10, "score": 25.5, "started_at": 100.0, "finished_at": 105.0}),
        FakeTrial("RUNNING", {"stage": 1, "layers": 2, "units": 8, "epochs": 10}, {"epoch": 4, "score": 40.0,
                                                                                   "started_at": 103.0,
                                                                                   "finished_at": 105.0}),
        FakeTrial("PENDING", {"stage": 1, "layers": 2, "units": 16, "epochs": 10}),
    ]
    line = progress.line(trials, elapsed=12.4)
    assert line.startswith("[0:12] stage 1: 2/4 done, 1 running (2x8 4/10), 1 queued")
    assert "best val_rmse 25.5" in line
    # stage 1: 40 - 24 epochs left over 2 slots, stage 2: 60 epochs one at a time, 0.5 s each
    assert line.endswith(f"left ~0:{round((16 / 2 + 60) * 0.5):02d}")


def test_the_heartbeat_speaks_at_most_every_interval():
    lines: list[str] = []
    progress = Progress(Objective("val_accuracy", "max"), stage_epochs={0: (5, 3)}, slots=1, echo=lines.append,
                        every=3600)
    progress.on_step_end(0, [])
    progress.on_step_end(1, [])
    assert lines == []
    progress.every = 0
    progress.on_step_end(2, [FakeTrial("RUNNING", {"layers": 1, "units": 4, "epochs": 3}, {"epoch": 1})])
    assert len(lines) == 1 and "0/5 done, 1 running (1x4 1/3), 0 queued" in lines[0] and "left ~?" in lines[0]
