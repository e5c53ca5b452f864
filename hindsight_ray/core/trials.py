"""What a trial reports each epoch, and which of its columns ``epochs.parquet`` keeps."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

# the seconds a trial spends, each summed over its epochs and reported with every result
TIMERS = ("data_s", "build_s", "train_s", "eval_s", "checkpoint_s")
EPOCH_COLUMNS = ["trial_id", "stage", "epoch", "loss", "val_loss", "epoch_s", "timestamp"]
# a result's JSON list of the epochs since the previous report (run.report_seconds)
FOLDED_KEY = "folded_epochs"


def epoch_row(result: dict[str, Any]) -> dict[str, Any]:
    """What ``epochs.parquet`` keeps of one epoch's result: the loss, validation metrics, seconds, time."""
    row = {k: v for k, v in result.items() if k in EPOCH_COLUMNS or k.startswith("val_")}
    row.setdefault("timestamp", int(result.get("finished_at") or time.time()))
    return row


class TrialState(StrEnum):
    """A trial's state as Ray Tune spells it, and as ``trials.parquet`` keeps it (equal to those strings)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    TERMINATED = "TERMINATED"
    ERROR = "ERROR"
    # ours, in trials.parquet only: ended before its last epoch (a scheduler, a budget, an unused
    # speculative branch); it has no score and takes no part in any ranking
    STOPPED = "STOPPED"

    def is_finished(self) -> bool:
        """Ended for good, well or badly (Tune will not run it again)."""
        return self in (TrialState.TERMINATED, TrialState.ERROR, TrialState.STOPPED)

    def is_waiting(self) -> bool:
        """Not started yet, or paused by a scheduler."""
        return self in (TrialState.PENDING, TrialState.PAUSED)


def stopped_early(result: dict[str, Any], epochs: int) -> bool:
    """True when a trial's last result comes before its last epoch: a scheduler or a budget cut it short.
    Results without an ``epoch`` (trainables that do not report one) are taken as complete."""
    return "epoch" in result and int(result["epoch"]) < int(epochs)
