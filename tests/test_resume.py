"""Real faults: SIGKILL the driver mid-sweep and resume; kill a trial's worker and watch it retry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from hindsight_ray.config import load_config
from hindsight_ray.results import TrialOutcome
from hindsight_ray.runner import run_sweep
from tests.spawn import die_with_pytest

pytestmark = pytest.mark.slow

SETTINGS = [
    "search.stage1.layers=[1,2]", "search.stage1.units=[4,8]", "search.stage1.epochs=6",
    "search.stage2.max_iterations=4", "search.stage2.epochs=6", "data.lags=6",
]


def cli(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", "hindsight_ray", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=die_with_pytest, **kwargs)


def sweep_args(storage: Path, name: str) -> list[str]:
    return ["sweep", "--storage", str(storage), "--name", name, *[f"--set={s}" for s in SETTINGS]]


def session_processes(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:
                pids.append(int(entry.name))
    return pids


def wait_for(condition, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the sweep to get there")


def stop_when(process: subprocess.Popen, condition, stop, what: str, timeout: float = 240) -> str:
    """Once ``condition()`` holds, ``stop()`` the running sweep (a signal, a killed Ray process) and
    return its output; the sweep's whole session is killed if it outlives the test's patience."""
    try:
        wait_for(lambda: condition() or process.poll() is not None, timeout=timeout)
        assert process.poll() is None, f"the sweep ended before {what}"
        stop()
        output, _ = process.communicate(timeout=120)  # only a hang fails this
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return output


def has_checkpoint(experiment: Path, stage: int) -> bool:
    """Some trial of ``stage`` has checkpointed (older checkpoints are deleted, so any one counts)."""
    return any(experiment.glob(f"train_lstm_*stage={stage}*/checkpoint_*"))


def decisions(experiment: Path) -> dict:
    summary = json.loads((experiment / "summary.json").read_text())
    return {
        "winner": (summary["stage1"]["winner"]["layers"], summary["stage1"]["winner"]["units"],
                   round(summary["stage1"]["winner"]["validation"], 6)),
        "path": [(round(s["learning_rate"], 10), round(s["score"], 6)) for s in summary["stage2"]["learning_rate_path"]],
        "best": (summary["best"]["layers"], summary["best"]["units"], summary["best"]["learning_rate"],
                 round(summary["best"]["validation"], 6), round(summary["best"]["test_rmse"], 6)),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    storage = tmp_path_factory.mktemp("reference")
    process = cli(*sweep_args(storage, "whole"), cwd=storage)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    # the command's own lines only: no Ray configuration box, no absl/TensorFlow lines, no warnings
    noise = [line for line in output.splitlines() if any(word in line for word in (
        "Configuration for experiment", "absl", "I0000", "W0000", "E0000", "cuda", "Warning", "WARNING"))]
    assert not noise, noise
    return decisions(storage / "whole")


def sigkill_when(process: subprocess.Popen, condition) -> None:
    """SIGKILL the sweep's whole session once ``condition()`` holds; wait until none of it is left."""
    try:
        wait_for(lambda: condition() or process.poll() is not None)
        assert process.poll() is None, "the sweep ended before it could be killed"
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it had already ended; the assertion above says so
        process.communicate()
    wait_for(lambda: not session_processes(process.pid), timeout=60)  # no stray Ray processes


def kill_and_resume(tmp_path: Path, stage: int) -> tuple[Path, float]:
    experiment = tmp_path / "killed"
    sigkill_when(cli(*sweep_args(tmp_path, "killed"), cwd=tmp_path, start_new_session=True),
                 lambda: has_checkpoint(experiment, stage))
    assert not (experiment / "summary.json").exists()
    began = time.time()
    resumed = cli("resume", str(experiment), cwd=tmp_path)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    return experiment, time.time() - began


@pytest.mark.parametrize(("signum", "stage", "group"), [(signal.SIGINT, 1, True), (signal.SIGTERM, 2, False)],
                         ids=["ctrl-c-stage1", "sigterm-stage2"])
def test_interrupted_sweep_finalizes_nothing_and_resume_decides_like_an_uninterrupted_run(
        tmp_path, reference, signum, stage, group):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) or SIGTERM (to the driver, as a job
    scheduler sends it): Tune stops, nothing is finalized, exit 128+signal, and resume finishes the search."""
    experiment = tmp_path / "stopped"
    process = cli(*sweep_args(tmp_path, "stopped"), cwd=tmp_path, start_new_session=True)
    output = stop_when(process, lambda: has_checkpoint(experiment, stage),
                       lambda: (os.killpg if group else os.kill)(process.pid, signum), "it could be interrupted")
    wait_for(lambda: not session_processes(process.pid), timeout=60)
    assert process.returncode == 128 + signum, output[-3000:]
    assert f"hindsight-ray resume {experiment}" in output and "Traceback" not in output
    assert "Stack trace" not in output and "*** SIG" not in output  # no C++ crash dump
    for finalized in ("summary.json", "best_model.keras", "trials.parquet"):
        assert not (experiment / finalized).exists(), finalized
    resumed = cli("resume", str(experiment), cwd=tmp_path)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert decisions(experiment) == reference


@pytest.mark.parametrize("stage", [2])  # stage 1 is interrupted (SIGINT) and resumed above
def test_sigkill_then_resume_decides_like_an_uninterrupted_run(tmp_path, reference, stage):
    experiment, _ = kill_and_resume(tmp_path, stage)
    assert decisions(experiment) == reference
    trials = pd.read_parquet(experiment / "trials.parquet")
    assert len(trials) == 4 + 3 and (trials.status == "TERMINATED").all()
    epochs = pd.read_parquet(experiment / "epochs.parquet")
    assert len(epochs) == trials.epochs.sum()
    if stage == 2:
        # stage-1 trials had finished before the kill: none of them trained again. One that finished
        # after Ray's last snapshot restarts from its final checkpoint and only reports its result again.
        # (epochs of milliseconds reach Tune folded into a later report: run.report_seconds)
        for path in experiment.glob("train_lstm_*stage=1*/result.json"):
            results = [json.loads(line) for line in path.read_text().splitlines()]
            last = [r["epoch"] for r in results].index(6)
            assert all(r["epoch"] == 6 and r["val_rmse"] == results[last]["val_rmse"] for r in results[last:])
            rows = TrialOutcome("t", {}, "TERMINATED", results[:last + 1], None).epochs()
            assert [row["epoch"] for row in rows] == list(range(1, 7))


def test_resume_of_a_finished_sweep_rewrites_nothing_and_refuses_changes(tmp_path, reference):
    storage = tmp_path
    process = cli(*sweep_args(storage, "done"), cwd=storage)
    assert process.wait(timeout=600) == 0
    experiment = storage / "done"
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


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_a_damaged_or_lost_searcher_state_is_rebuilt_from_rays_trials(tmp_path, reference, damage):
    """Interrupted in stage 2, then the two-stage decisions file cut to 200 bytes (a full disk) or gone:
    resume rebuilds the decisions from the trials Ray recorded and reaches the uninterrupted answer, with
    every finished trial kept."""
    experiment = tmp_path / "damaged"
    process = cli(*sweep_args(tmp_path, "damaged"), cwd=tmp_path, start_new_session=True)
    try:
        wait_for(lambda: has_checkpoint(experiment, 2) or process.poll() is not None)
        assert process.poll() is None, "the sweep ended before it could be interrupted"
        os.killpg(process.pid, signal.SIGINT)
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    wait_for(lambda: not session_processes(process.pid), timeout=60)
    assert process.returncode == 130
    state = sorted(experiment.glob("searcher-state-*.pkl"))[-1]
    if damage == "truncated":
        state.write_bytes(state.read_bytes()[:200])
    else:
        state.unlink()
    resumed = cli("resume", str(experiment), cwd=tmp_path)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "rebuilt from the" in output and "trials Ray recorded" in output, output
    assert "going on from the one before" not in output
    assert decisions(experiment) == reference
    trials = pd.read_parquet(experiment / "trials.parquet")
    assert len(trials) == 4 + 3 and (trials.status == "TERMINATED").all()


def _children_named(pid: int, name: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and (entry / "comm").read_text().strip() == name:
                    return True
            except OSError:
                continue
    return False


TINY = ["--set=search.stage1.layers=[1]", "--set=search.stage1.units=[4]", "--set=search.stage1.epochs=2",
        "--set=search.stage2.max_iterations=1", "--set=search.stage2.epochs=2", "--set=data.lags=6"]


def test_sigterm_while_ray_starts_is_one_line_and_exit_143(tmp_path):
    process = cli("sweep", "--storage", str(tmp_path), "--name", "early", *TINY, cwd=tmp_path,
                  start_new_session=True)
    output = stop_when(process, lambda: _children_named(process.pid, "gcs_server"),
                       lambda: os.kill(process.pid, signal.SIGTERM), "Ray started", timeout=120)
    wait_for(lambda: not session_processes(process.pid), timeout=60)
    assert process.returncode == 143, output
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert lines and "interrupted (SIGTERM)" in lines[-1] and "Traceback" not in output, output


def test_ctrl_c_after_the_folder_exists_names_the_resume_and_resume_finishes(tmp_path):
    experiment = tmp_path / "fresh"
    process = cli("sweep", "--storage", str(tmp_path), "--name", "fresh", *TINY, cwd=tmp_path,
                  start_new_session=True)
    seen: list[str] = []
    try:
        for line in process.stdout:  # the plan is printed once the folder and its config.json exist
            seen.append(line)
            if line.startswith("experiment"):
                os.killpg(process.pid, signal.SIGINT)
                break
        output = "".join(seen) + process.communicate(timeout=120)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    wait_for(lambda: not session_processes(process.pid), timeout=60)
    assert process.returncode == 130, output
    assert f"hindsight-ray resume {experiment}" in output and "Tuner.restore(" not in output, output
    assert output.count("hindsight-ray resume") == 1, output  # one hint: ours, not Tune's as well
    resumed = cli("resume", str(experiment), cwd=tmp_path)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0 and (experiment / "summary.json").exists(), output


@pytest.fixture()
def small_disk(tmp_path):
    """A real 16 MB tmpfs (root mounts one; the sweep's own files take about 3 MB), unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.strip() or made.returncode}); needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_stops_the_sweep_in_one_line_and_resume_finishes_it(small_disk, reference):
    """The storage fills while stage 1 runs: one error line naming the folder, exit 2, no retries spent and
    Ray's previous snapshot whole; once there is space again, resume reaches the uninterrupted answer."""
    experiment = small_disk / "full"
    filler = small_disk / "filler"
    out = filler.open("wb")  # opened while there is space
    process = cli(*sweep_args(small_disk, "full"), cwd=small_disk.parent, start_new_session=True)
    try:
        wait_for(lambda: has_checkpoint(experiment, 1) or process.poll() is not None)
        assert process.poll() is None, "the sweep ended before the disk could fill"
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass  # full
        finally:
            try:
                out.close()
            except OSError:
                pass
        output, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    wait_for(lambda: not session_processes(process.pid), timeout=60)
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert process.returncode == 2, output[-3000:]
    # whichever write finds the disk full first (a trial's checkpoint, or the driver's own files) names it
    assert len(errors) == 1 and errors[0].startswith(f"error: cannot write {experiment}"), output[-3000:]
    assert "No space left on device; free some space, then" in errors[0] and "resume" in errors[0]
    assert "Traceback" not in output
    for snapshot in experiment.glob("experiment_state-*.json"):
        json.loads(snapshot.read_text())  # whole: written beside, renamed only when complete
    filler.unlink()
    resumed = cli("resume", str(experiment), cwd=small_disk.parent)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output[-3000:]
    assert decisions(experiment) == reference
    trials = pd.read_parquet(experiment / "trials.parquet")
    assert (trials.status == "TERMINATED").all()


def _session_process_named(sid: int, name: str) -> int | None:
    for pid in session_processes(sid):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                return pid
        except OSError:
            continue
    return None


@pytest.mark.parametrize(("process_name", "called"), [("raylet", "raylet"), ("gcs_server", "GCS server")])
def test_the_local_ray_dying_is_one_line_and_a_prompt_exit_and_resume_finishes(tmp_path, reference, process_name,
                                                                                called):
    """The sweep's own local Ray loses its raylet or its GCS server (killed, out of memory): one error line
    naming it and the resume command, exit 1 at once (not a minute of Ray waiting for a GCS that is gone),
    no Ray process of the sweep left behind, and resume reaches the uninterrupted answer."""
    experiment = tmp_path / "lost"
    process = cli(*sweep_args(tmp_path, "lost"), cwd=tmp_path, start_new_session=True)
    victims = []

    def kill_it() -> None:
        victims.append(_session_process_named(process.pid, process_name))
        assert victims[0] is not None, f"no {process_name} among the sweep's processes"
        os.kill(victims[0], signal.SIGKILL)

    output = stop_when(process, lambda: has_checkpoint(experiment, 1), kill_it, "its Ray could be killed")
    victim = victims[0]
    wait_for(lambda: not session_processes(process.pid), timeout=60)  # the rest of its Ray stopped too
    assert process.returncode == 1, output[-3000:]
    last = output.strip().splitlines()[-1]
    assert last.startswith(f"error: the local Ray stopped (its {called}, pid {victim}, exited with -9)"), output[-3000:]
    assert last.endswith(f"resume with  hindsight-ray resume {experiment}") and "Traceback" not in output
    resumed = cli("resume", str(experiment), cwd=tmp_path)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert decisions(experiment) == reference


def test_sigterm_while_finalizing_is_exit_143_with_the_resume_line_and_resume_finishes(tmp_path, reference):
    """SIGTERM once the test evaluation has written its predictions (the tables, the summary and the report
    still to come): the graceful stop, exit 143, the resume line, and resume reaches the same answer."""
    experiment = tmp_path / "ending"
    process = cli(*sweep_args(tmp_path, "ending"), cwd=tmp_path, start_new_session=True)
    output = stop_when(process, lambda: (experiment / "test_predictions.parquet").exists(),
                       lambda: os.kill(process.pid, signal.SIGTERM), "it could be stopped while finalizing")
    assert process.returncode == 143, output[-3000:]
    assert f"hindsight-ray resume {experiment}" in output.strip().splitlines()[-1] and "Traceback" not in output
    resumed = cli("resume", str(experiment), cwd=tmp_path)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert decisions(experiment) == reference
