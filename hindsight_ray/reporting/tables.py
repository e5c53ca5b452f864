"""Experiment dir -> tidy tables (``trials.parquet``, ``epochs.parquet``) and ``summary.json``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from hindsight_ray.core.objective import SCORE_EPOCH_KEY, SCORE_KEY, Objective, finite
from hindsight_ray.core.trials import EPOCH_COLUMNS, FOLDED_KEY, TIMERS, TrialState, epoch_row

if TYPE_CHECKING:
    # pandas is imported where tables are made: a trial worker needs none of it
    import pandas as pd

TRIAL_COLUMNS = [
    "trial_id",
    "strategy",
    "stage",
    "layers",
    "units",
    "learning_rate",
    "epochs",
    "status",
    "best_epoch",
    SCORE_EPOCH_KEY,
    "params",
    "queued_at",
    "started_at",
    "finished_at",
    "queue_s",
    "data_s",
    "build_s",
    "train_s",
    "eval_s",
    "checkpoint_s",
    "total_s",
    "node_ip",
    "node_id",
    "gpu_ids",
    "deterministic",
    "backend",
    "cudnn",
    "gpu_peak_bytes",
    "retries",
    "checkpoint_path",
]


class Winner(TypedDict):
    """Stage 1's winning architecture."""

    trial_id: str
    layers: int
    units: int
    validation: float | None
    params: int | None


class Stage1(TypedDict):
    trials: int
    failed: int
    winner: Winner | None


class Stage2(TypedDict):
    iterations: int
    # {iteration, trial_id, learning_rate, score, improved} per decision
    learning_rate_path: list[dict[str, Any]]
    speculative: bool
    speculative_trials: int


class Best(TypedDict, total=False):
    """The chosen trial; ``test_<metric>`` keys (one per metric) are added beside these."""

    trial_id: str
    stage: int | None
    layers: int
    units: int
    learning_rate: float
    epochs: int
    # the scored epoch, whose weights best_model.keras holds
    epoch: int
    validation: float
    last_validation: float
    model: str


class Summary(TypedDict):
    """``summary.json``: written last, so its presence means the sweep finished."""

    experiment: str
    experiment_dir: str
    strategy: str
    metric: str
    mode: str
    # search.score: best_epoch | last_epoch | mean_last
    score: str
    seed: int
    budget: int | None
    data: dict[str, Any]
    stage1: Stage1 | None
    stage2: Stage2 | None
    best: Best | None
    baselines: dict[str, Any]
    wall_s: float
    trial_s: float
    trial_epochs: int
    trials_run: int
    stopped_trials: int
    retries: int
    utilization: dict[str, Any]
    finished_at: float


@dataclass(frozen=True)
class TrialOutcome:
    """One trial as Ray recorded it: its config, status, every reported result, its last checkpoint."""

    trial_id: str
    config: dict[str, Any]
    status: str
    results: list[dict[str, Any]]
    checkpoint_path: str | None
    num_failures: int = 0

    def epochs(self) -> list[dict[str, Any]]:
        """Every epoch's row in order: the epochs each report carried along (``FOLDED_KEY``), then its own."""
        rows: list[dict[str, Any]] = []
        for result in self.results:
            folded = result.get(FOLDED_KEY)
            rows.extend(json.loads(folded) if isinstance(folded, str) and folded else [])
            rows.append(epoch_row(result))
        return rows


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """A table as the bytes of a Parquet file (written to an Arrow buffer: no Python file object for Arrow's
    threads to call back into, see ``ExperimentStore.read_table``)."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    frame.to_parquet(sink, index=False)
    return bytes(sink.getvalue().to_pybytes())


def trials_table(
    outcomes: Iterable[TrialOutcome],
    *,
    objective: Objective,
    strategy: str,
    queued_at: dict[str, float] | None = None,
) -> pd.DataFrame:
    """One row per trial, in the columns DESIGN.md lists, ordered by when the trial was queued.

    ``val_<metric>`` is the trial's score by ``search.score`` (the best epoch's value by default), the
    other ``val_*`` columns are taken at the scored epoch, and ``last_val_<metric>`` is the last epoch's.
    """
    import pandas as pd

    queued_at = queued_at or {}
    metric = objective.metric
    rows = []
    for outcome in outcomes:
        last = outcome.results[-1] if outcome.results else {}
        finished_ok = outcome.status == TrialState.TERMINATED
        scored_epoch = last.get(SCORE_EPOCH_KEY)
        at = next((r for r in reversed(outcome.epochs()) if r.get("epoch") == scored_epoch), last)
        started = last.get("started_at")
        finished = last.get("finished_at")
        row: dict[str, Any] = {
            "trial_id": outcome.trial_id,
            "strategy": strategy,
            "stage": outcome.config.get("stage"),
            "layers": outcome.config.get("layers"),
            "units": outcome.config.get("units"),
            "learning_rate": outcome.config.get("learning_rate"),
            "epochs": outcome.config.get("epochs"),
            "status": outcome.status,
            metric: _score(last.get(SCORE_KEY)) if finished_ok else None,
            objective.last_key: last.get(metric) if finished_ok else None,
            "best_epoch": last.get("best_epoch"),
            SCORE_EPOCH_KEY: scored_epoch,
            "epochs_run": last.get("epoch"),
            "pid": last.get("pid"),
            "params": last.get("params"),
            "queued_at": queued_at.get(outcome.trial_id),
            "started_at": started,
            "finished_at": finished,
            "node_ip": last.get("node_ip"),
            "node_id": last.get("node_id"),
            "gpu_ids": last.get("gpu_ids"),
            "deterministic": last.get("deterministic"),
            "backend": last.get("backend"),
            "cudnn": last.get("cudnn"),
            "gpu_peak_bytes": last.get("gpu_peak_bytes"),
            "retries": max(int(last.get("retries", 0) or 0), outcome.num_failures),
            "checkpoint_path": outcome.checkpoint_path,
            **{name: last.get(name) for name in TIMERS},
        }
        for key, value in at.items():
            if key.startswith("val_") and key not in row:
                row[key] = value if finished_ok else None
        # the driver notes a trial as queued when Tune's event reaches it, which can be a few ms after the
        # worker has started it: no wait, not a negative one
        row["queue_s"] = (
            max(0.0, started - row["queued_at"]) if started and row["queued_at"] else None
        )
        row["total_s"] = finished - started if started and finished else None
        rows.append(row)
    columns = [*TRIAL_COLUMNS[:8], metric, objective.last_key, *TRIAL_COLUMNS[8:]]
    frame = pd.DataFrame(rows)
    for column in columns:
        if column not in frame.columns:
            frame[column] = None
    extra = [c for c in frame.columns if c not in columns]
    frame = frame[columns + extra]
    return frame.sort_values(
        ["queued_at", "started_at"], na_position="last", kind="stable"
    ).reset_index(drop=True)


def _score(value: Any) -> float | None:
    return None if value is None else finite(float(value))


def epochs_table(outcomes: Iterable[TrialOutcome]) -> pd.DataFrame:
    """One row per trial and reported epoch: losses, validation metrics and epoch seconds."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for outcome in outcomes:
        rows.extend(
            {"trial_id": outcome.trial_id, "stage": outcome.config.get("stage"), **row}
            for row in outcome.epochs()
        )
    frame = pd.DataFrame(rows, columns=None if rows else EPOCH_COLUMNS)
    if frame.empty:
        return frame
    # a trial restarted from a checkpoint reports its later epochs again: keep the last report of each
    return frame.drop_duplicates(["trial_id", "epoch"], keep="last").reset_index(drop=True)


def busy_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Length of the union of time intervals: the seconds at least one of them was running."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def utilization(trials: pd.DataFrame, wall_s: float) -> dict[str, Any]:
    """Per node and per GPU: busy seconds (some trial running) and the share of the sweep's wall time."""
    import pandas as pd

    ran = trials.dropna(subset=["started_at", "finished_at"])

    def entry(rows: pd.DataFrame) -> dict[str, float]:
        busy = busy_seconds(zip(rows.started_at, rows.finished_at, strict=True))
        return {
            "busy_s": busy,
            "busy_share": busy / wall_s if wall_s > 0 else 0.0,
            "trials": int(len(rows)),
            "trial_s": float((rows.finished_at - rows.started_at).sum()),
        }

    node = ran["node_ip"].fillna("?") + " " + ran["node_id"].fillna("").str[:8]
    nodes = {key.strip(): entry(rows) for key, rows in ran.groupby(node)}
    gpus: dict[str, list[pd.DataFrame]] = {}
    for index, ids in ran["gpu_ids"].fillna("").items():
        for gpu in filter(None, str(ids).split(",")):
            gpus.setdefault(f"{node[index].strip()} gpu{gpu}", []).append(ran.loc[[index]])
    return {
        "nodes": nodes,
        "gpus": {key: entry(pd.concat(parts)) for key, parts in sorted(gpus.items())},
    }
