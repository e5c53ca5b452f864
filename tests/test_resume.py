"""Real faults: SIGINT, SIGTERM or SIGKILL the driver mid-sweep and resume; kill a trial's worker and watch it retry."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time

import pandas as pd
import pytest

from hindsight_ray.config.schema import load_config
from hindsight_ray.reporting.tables import TrialOutcome
from hindsight_ray.running.runner import run_sweep
from tests.faults import checkpoints, cli, decisions, resume, sigkill_when

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stop", ["ctrl-c-stage1", "sigterm-stage2"])
def test_an_interrupted_sweep_finalizes_nothing_and_names_its_resume(stopped_in_stage2, stop):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) to a resumed sweep in stage 1, then
    SIGTERM (to the driver, as a job scheduler sends it) to its resume in stage 2: Tune stops, nothing is finalized, exit 128+signal,
    the resume line and no traceback each time."""
    seen = json.loads((stopped_in_stage2.parent / "stops.json").read_text())[stop]
    output, signum = seen["output"], signal.SIGINT if stop.startswith("ctrl-c") else signal.SIGTERM
    assert seen["returncode"] == 128 + signum, output[-3000:]
    assert f"hindsight-ray resume {stopped_in_stage2}" in output and "Traceback" not in output
    assert "Stack trace" not in output and "*** SIG" not in output  # no C++ crash dump
    assert seen["finalized"] == [], seen["finalized"]


def test_sigkill_in_stage2_after_three_stops_then_resume_decides_like_an_uninterrupted_run(stopped_in_stage2,
                                                                                          tmp_path, reference):
    """The fourth stop of one sweep: its third resume SIGKILLed (the whole session, as the OOM killer or a
    lost machine would) once it has checkpointed a stage-2 trial anew; the last resume reaches the
    uninterrupted answer, every trial finished once and recorded once."""
    experiment = tmp_path / "stopped"  # a copy: a moved folder resumes
    shutil.copytree(stopped_in_stage2, experiment)
    before = checkpoints(experiment, 2)
    sigkill_when(cli("resume", str(experiment), cwd=tmp_path, start_new_session=True),
                 lambda: bool(checkpoints(experiment, 2) - before))
    assert not (experiment / "summary.json").exists()
    resume(experiment, tmp_path)
    assert decisions(experiment) == reference
    trials = pd.read_parquet(experiment / "trials.parquet")
    assert len(trials) == 4 + 3 and (trials.status == "TERMINATED").all()
    epochs = pd.read_parquet(experiment / "epochs.parquet")
    assert len(epochs) == trials.epochs.sum()
    # stage-1 trials had finished before the kill: none of them trained again. One that finished after
    # Ray's last snapshot restarts from its final checkpoint and only reports its result again.
    # (epochs of milliseconds reach Tune folded into a later report: run.report_seconds)
    for path in experiment.glob("train_lstm_*stage=1*/result.json"):
        results = [json.loads(line) for line in path.read_text().splitlines()]
        last = [r["epoch"] for r in results].index(6)
        assert all(r["epoch"] == 6 and r["val_rmse"] == results[last]["val_rmse"] for r in results[last:])
        rows = TrialOutcome("t", {}, "TERMINATED", results[:last + 1], None).epochs()
        assert [row["epoch"] for row in rows] == list(range(1, 7))


def test_resume_of_a_finished_sweep_rewrites_nothing_and_refuses_changes(tmp_path, reference_experiment):
    storage = tmp_path
    experiment = storage / "done"
    shutil.copytree(reference_experiment, experiment)  # a finished sweep (a copy: the reference is shared)
    stamps = {p: p.stat().st_mtime_ns for p in experiment.glob("*.*")}
    again = cli("resume", str(experiment), cwd=storage)
    output, _ = again.communicate(timeout=120)
    assert again.returncode == 0 and "already finished" in output
    assert {p: p.stat().st_mtime_ns for p in experiment.glob("*.*")} == stamps
    changed = cli("resume", str(experiment), "--set", "search.stage1.epochs=7", cwd=storage)
    output, _ = changed.communicate(timeout=120)
    assert changed.returncode == 2 and "search.stage1.epochs" in output and "differs" in output
    missing = cli("resume", str(storage / "nothing"), cwd=storage)
    output, _ = missing.communicate(timeout=120)
    assert missing.returncode == 2 and "not a hindsight-ray experiment" in output


def test_killed_trial_worker_retries_from_its_checkpoint(local_ray, tmp_path):
    config = load_config(None, [
        "search.stage1.layers=[1]", "search.stage1.units=[4,8]", "search.stage1.epochs=40",
        "search.stage2.max_iterations=1", "search.stage2.epochs=2", "data.lags=6", "run.checkpoint_every=3",
        "run.report_seconds=0",  # every epoch its own report: the retry is checked epoch by epoch
        f"storage={tmp_path}", "name=faulty",
    ])
    experiment = tmp_path / "faulty"
    killed: dict[str, object] = {}

    def kill_a_worker() -> None:
        deadline = time.time() + 300
        while time.time() < deadline and not killed:
            for path in experiment.glob("train_lstm_*stage=1*/result.json"):
                lines = path.read_text().splitlines()
                if len(lines) >= 5:
                    last = json.loads(lines[-1])
                    os.kill(last["pid"], signal.SIGKILL)
                    killed.update(trial_id=last["trial_id"], epoch=last["epoch"])
                    return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_a_worker, daemon=True)
    killer.start()
    run_sweep(config, echo=lambda line: None)
    killer.join()
    assert killed, "no worker was killed"
    trials = pd.read_parquet(experiment / "trials.parquet").set_index("trial_id")
    victim = trials.loc[killed["trial_id"]]
    assert victim.status == "TERMINATED" and victim.retries >= 1
    result_file = next(experiment.glob(f"train_lstm_{killed['trial_id']}_*/result.json"))
    reported = [json.loads(line)["epoch"] for line in result_file.read_text().splitlines()]
    repeated = len(reported) - len(set(reported))
    assert 0 <= repeated <= 3  # at most checkpoint_every epochs are trained twice (3 if the kill lands as
    # epoch 6 is reported but before Tune has registered its checkpoint)
    assert sorted(set(reported)) == list(range(1, 41))
    epochs = pd.read_parquet(experiment / "epochs.parquet")
    assert (epochs[epochs.trial_id == killed["trial_id"]].epoch.tolist()) == list(range(1, 41))
