"""W&B tracking as its users expect, offline (nothing leaves the machine): a run per trial grouped by the sweep,
every epoch at its step, a sweep run with the scores, a table of the trials and the model artifact; a resumed
sweep logs into the same runs. Checked in the records W&B writes for ``wandb sync``."""

from __future__ import annotations

import json
import struct
import threading
import time
from pathlib import Path

import pytest

wandb = pytest.importorskip("wandb")
pytest.importorskip("ray.tune")

from wandb.proto import wandb_internal_pb2  # noqa: E402

from hindsight_ray.reporting.wandb_tracking import WandbTracker, artifact_name  # noqa: E402

pytestmark = pytest.mark.slow  # Ray Tune's Callback is the tracker's base class: imports Ray (but starts none)


def records(path: Path) -> list:
    """The records of one ``run-<id>.wandb`` file (W&B's log format: a 7-byte header, then 32 KiB blocks of
    chunks, each ``crc32, length, type`` and its bytes)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    found, chunk, position, block = [], b"", 7, 32768
    while position + 7 <= len(data):
        if block - position % block < 7:  # the rest of a block is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if kind == 0 and length == 0:
            break
        chunk += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            found.append(record)
            chunk = b""
    return found


def key(item) -> str:
    return item.key or "/".join(item.nested_key)


def offline_runs(folder: Path) -> list[dict]:
    """Every offline run under ``folder``: its id, name, group, job type, tags, history rows, summary and
    exit code, and the artifacts it logged."""
    runs = []
    for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
        run: dict = {"history": [], "summary": {}, "artifacts": [], "exit": None}
        for record in records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run.update(id=record.run.run_id, name=record.run.display_name, group=record.run.run_group,
                           job_type=record.run.job_type, tags=list(record.run.tags))
            elif kind == "history":
                run["history"].append({key(item): json.loads(item.value_json) for item in record.history.item})
            elif kind == "summary":
                run["summary"].update({key(item): json.loads(item.value_json) for item in record.summary.update})
            elif kind == "artifact":
                run["artifacts"].append((record.artifact.name, record.artifact.type,
                                         sorted(entry.path for entry in record.artifact.manifest.contents)))
            elif kind == "exit":
                run["exit"] = record.exit.exit_code
        runs.append(run)
    return runs


def finished_runs(folder: Path, count: int, timeout: float = 60) -> list[dict]:
    """``offline_runs`` once ``count`` runs are written whole (W&B's writer is another process: its last
    records can land a moment after ``finish()`` returns on a loaded machine)."""
    deadline = time.time() + timeout
    while True:
        runs = offline_runs(folder)
        whole = len(runs) >= count and all("id" in run and run["exit"] is not None for run in runs)
        if whole or time.time() > deadline:
            return runs
        time.sleep(0.2)


def test_artifact_names_keep_to_what_wandb_allows():
    assert artifact_name("airline sweep #2") == "airline-sweep-2-best-model"


class Trial:
    def __init__(self, trial_id: str) -> None:
        self.trial_id, self.config = trial_id, {"stage": 1, "layers": 1, "units": 4, "learning_rate": 0.01}


def tracker_for(experiment: Path) -> WandbTracker:
    return WandbTracker(str(experiment), str(experiment), "hr-test", None, "offline", "resumed", {})


def test_a_resumed_sweep_goes_on_in_the_same_runs_and_tunes_loop_never_calls_wandb(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    experiment = tmp_path / "exp"
    experiment.mkdir()
    callers: list[threading.Thread] = []
    real_init = wandb.init

    def init(*args, **kwargs):
        callers.append(threading.current_thread())
        return real_init(*args, **kwargs)

    monkeypatch.setattr(wandb, "init", init)
    first = tracker_for(experiment)
    first.setup()
    first.on_trial_start(0, [], Trial("a"))
    for epoch in (1, 2):
        first.on_trial_result(0, [], Trial("a"), {"epoch": epoch, "val_rmse": 10.0 - epoch})
    first.on_experiment_end([])  # Ctrl-C: the trial stopped mid-way
    assert not first.errors and threading.main_thread() not in callers and callers
    resumed = tracker_for(experiment)  # the resume's tracker: the same run, epochs 3 and 4
    resumed.setup()
    resumed.on_trial_start(0, [], Trial("a"))
    for epoch in (3, 4):
        resumed.on_trial_result(0, [], Trial("a"), {"epoch": epoch, "val_rmse": 10.0 - epoch})
    resumed.on_trial_complete(0, [], Trial("a"))
    resumed.on_experiment_end([])
    assert not resumed.errors
    runs = finished_runs(experiment, 2)
    assert len(runs) == 2 and runs[0]["id"] == runs[1]["id"] == json.loads(
        (experiment / "wandb.json").read_text())["runs"]["a"]
    assert [row["_step"] for row in runs[0]["history"]] == [1, 2] and runs[0]["exit"] == 1  # preempted
    assert [row["_step"] for row in runs[1]["history"]] == [3, 4] and runs[1]["exit"] == 0
    assert runs[1]["name"] == "1x4 lr=0.01 #1" and runs[1]["group"] == "resumed"


def test_a_sweep_logs_a_run_per_trial_and_the_sweep_with_its_model(local_ray, tmp_path, monkeypatch, capsys):
    import pandas as pd

    import hindsight_ray as hr

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    lines: list[str] = []
    result = hr.sweep(overrides=[
        "search.stage1.layers=[1]", "search.stage1.units=[4,8]", "search.stage1.epochs=3",
        "search.stage2.max_iterations=1", "search.stage2.epochs=3", "data.lags=6",
        "resources.max_concurrent=1",  # one trial worker per sweep, not one per slot
        "run.callbacks=[wandb]", "run.wandb.project=hr-test",
    ], storage=str(tmp_path), name="tracked", echo=lines.append, report=False)
    experiment = tmp_path / "tracked"
    trials = pd.read_parquet(experiment / "trials.parquet")
    # a run per trial, and the sweep's
    runs = finished_runs(experiment, len(trials) + 1)
    trial_runs = [run for run in runs if run["job_type"] == "trial"]
    assert len(trial_runs) == len(trials) == len(result.trials) and {r["group"] for r in runs} == {"tracked"}
    ids = json.loads((experiment / "wandb.json").read_text())["runs"]
    assert sorted(ids) == sorted(trials.trial_id) and sorted(ids.values()) == sorted(r["id"] for r in trial_runs)
    for run in trial_runs:
        assert [row["_step"] for row in run["history"]] == [1, 2, 3] and run["exit"] == 0
        assert all("val_rmse" in row and row["epoch"] == row["_step"] for row in run["history"])
        assert run["tags"] in (["stage1"], ["stage2"])
    (sweep_run,) = [run for run in runs if run["job_type"] == "sweep"]
    assert sweep_run["name"] == "tracked" and sweep_run["exit"] == 0
    assert sweep_run["summary"]["best_trial"] == result.best["trial_id"]
    assert sweep_run["summary"]["best_validation"] == pytest.approx(result.best["validation"])
    table = sweep_run["history"][-1]  # the table of every trial
    assert table["trials/_type"] == "table-file" and table["trials/nrows"] == len(trials)
    ((name, files),) = [(name, files) for name, kind, files in sweep_run["artifacts"] if kind == "model"]
    assert name == "tracked-best-model"
    assert {"best_model.keras", "preprocessing.json", "summary.json"} <= set(files)
    printed = "\n".join(lines) + capsys.readouterr().out
    assert "wandb:" not in printed and "View run" not in printed
    assert any(line.startswith("wandb ") for line in lines)  # one line at the end says where the runs are
