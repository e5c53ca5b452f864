"""What a trial reports each epoch, and which of its columns ``epochs.parquet`` keeps."""

from __future__ import annotations

import time
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
