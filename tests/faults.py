"""Helpers of the fault tests: the sweep command in its own session, waiting for a point in it, stopping it there
(a signal, SIGKILL, a killed Ray process), and the decisions a resumed sweep must share with an uninterrupted one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.spawn import die_with_pytest

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
        time.sleep(0.05)  # each look scans /proc or the folder: 20 a second is quick enough, and cheap
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


def uninterrupted_run(storage: Path) -> Path:
    """Run the default fault-test sweep once without interruption into ``storage``; its folder (what every
    resumed sweep's decisions must match)."""
    process = cli(*sweep_args(storage, "whole"), cwd=storage)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    # the command's own lines only: no Ray configuration box, no absl/TensorFlow lines, no warnings
    noise = [line for line in output.splitlines() if any(word in line for word in (
        "Configuration for experiment", "absl", "I0000", "W0000", "E0000", "cuda", "Warning", "WARNING"))]
    assert not noise, noise
    return storage / "whole"


def shared_run(tmp_path_factory, name: str, make) -> Path:
    """``make(folder)`` run once per test run, even across pytest-xdist workers: the first worker to ask
    makes it under the run's shared temp root (a file lock keeps the others waiting), the rest reuse it.
    ``make`` returns the path it made; a failed ``make`` is retried by the next test that asks."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = root / f"shared-{name}", root / f"shared-{name}.done"
    with FileLock(str(root / f"shared-{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            done.write_text(str(make(folder)))
    return Path(done.read_text())


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


FINALIZED = ("summary.json", "best_model.keras", "trials.parquet")


def interrupt_when(process: subprocess.Popen, condition, signum: int, group: bool) -> dict:
    """Send ``signum`` to the sweep's process group (as a terminal sends Ctrl-C) or to its driver alone (as a
    job scheduler sends SIGTERM) once ``condition()`` holds; once none of its session is left, what a user
    would then see: the exit status, the output, the finalized files that exist."""
    output = stop_when(process, condition, lambda: (os.killpg if group else os.kill)(process.pid, signum),
                       "it could be interrupted")
    wait_for(lambda: not session_processes(process.pid), timeout=60)
    return {"returncode": process.returncode, "output": output}


def interrupt_at_the_plan(process: subprocess.Popen) -> dict:
    """Ctrl-C to the sweep's process group once it has printed its plan (by then its folder and config.json
    exist, and no trial has started); what a user then sees, as ``interrupt_when``."""
    seen: list[str] = []
    try:
        for line in process.stdout:
            seen.append(line)
            if line.startswith("experiment"):
                os.killpg(process.pid, signal.SIGINT)
                break
        output = "".join(seen) + process.communicate(timeout=120)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    wait_for(lambda: not session_processes(process.pid), timeout=60)
    return {"returncode": process.returncode, "output": output}


def stopped_in_both_stages(storage: Path) -> Path:
    """The default fault-test sweep stopped three times, each stop recorded in ``stops.json`` beside it:
    Ctrl-C as soon as its folder exists; its resume stopped by Ctrl-C once a stage-1 trial has checkpointed;
    that one's resume sent SIGTERM once a stage-2 trial has checkpointed. Once per test run: the fault
    tests that go on from a sweep interrupted in stage 2 start from a copy."""
    experiment = storage / "stopped"
    stops = {"ctrl-c-at-the-plan": interrupt_at_the_plan(cli(*sweep_args(storage, "stopped"), cwd=storage,
                                                               start_new_session=True))}
    stops["ctrl-c-stage1"] = interrupt_when(cli("resume", str(experiment), cwd=storage, start_new_session=True),
                                            lambda: has_checkpoint(experiment, 1), signal.SIGINT, group=True)
    stops["ctrl-c-stage1"]["finalized"] = [name for name in FINALIZED if (experiment / name).exists()]
    stops["sigterm-stage2"] = interrupt_when(cli("resume", str(experiment), cwd=storage, start_new_session=True),
                                             lambda: has_checkpoint(experiment, 2), signal.SIGTERM, group=False)
    stops["sigterm-stage2"]["finalized"] = [name for name in FINALIZED if (experiment / name).exists()]
    (storage / "stops.json").write_text(json.dumps(stops))
    return experiment


def reported(experiment: Path) -> dict[str, int]:
    """The size of every trial's result.json there now: it changes when any trial reports."""
    return {str(p): p.stat().st_size for p in experiment.glob("train_lstm_*/result.json")}


def checkpoints(experiment: Path, stage: int) -> set[str]:
    """Every checkpoint folder of ``stage``'s trials there now."""
    return {str(p.relative_to(experiment)) for p in experiment.glob(f"train_lstm_*stage={stage}*/checkpoint_*")}


def resume(experiment: Path, cwd: Path) -> str:
    """``hindsight-ray resume`` run to its end; it must finish."""
    resumed = cli("resume", str(experiment), cwd=cwd)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output[-3000:]
    return output
