"""Stand-ins for what this machine or a unit test cannot have: Tune's trials as the console reads them,
the nodes of a Ray cluster as ``ray.nodes()`` describes them, and trials as Ray recorded them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hindsight_ray.reporting.tables import TrialOutcome


@dataclass
class FakeTrial:
    """What the console reads of a Tune trial."""

    status: str
    config: dict[str, Any]
    last_result: dict[str, Any] = field(default_factory=dict)


def node(cpus: float = 2, gpus: float = 0, memory: float = 8e9, host: str = "127.0.0.1",
         alive: bool = True) -> dict[str, Any]:
    """One node as ``ray.nodes()`` describes it."""
    resources: dict[str, float] = {"CPU": cpus, "memory": memory}
    if gpus:
        resources["GPU"] = gpus
    return {"Alive": alive, "NodeManagerAddress": host, "Resources": resources}


def outcome(trial_id: str, config: dict[str, Any], curve: list[float], *, metric: str = "val_rmse",
            status: str = "TERMINATED", started_at: float = 1000.0, epoch_s: float = 1.0,
            checkpoint: str | None = "/nowhere/checkpoint") -> TrialOutcome:
    """A trial as Ray recorded it: one result per epoch of ``curve`` (its validation values), scored by the
    best epoch as the trainable reports it."""
    results, best, best_epoch = [], None, 0
    for epoch, value in enumerate(curve, start=1):
        if best is None or value < best:
            best, best_epoch = value, epoch
        results.append({"epoch": epoch, "loss": value, metric: value, "val_loss": value, "score": best,
                        "score_epoch": best_epoch, "best_epoch": best_epoch, "epoch_s": epoch_s, "params": 100,
                        "retries": 0, "started_at": started_at, "finished_at": started_at + epoch * epoch_s,
                        "data_s": 0.01, "build_s": 0.1, "train_s": epoch * epoch_s * 0.8,
                        "eval_s": epoch * epoch_s * 0.1, "checkpoint_s": epoch * epoch_s * 0.05,
                        "node_ip": "127.0.0.1", "node_id": "n1", "gpu_ids": "", "timestamp": started_at + epoch})
    return TrialOutcome(trial_id=trial_id, config=config, status=status, results=results, checkpoint_path=checkpoint)
