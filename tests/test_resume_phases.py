"""A stop in every phase (Ray starting, the folder just made, finalizing) and the sweep's own Ray dying: one line,
the exit status a shell expects, and a resume that finishes."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.faults import (
    cli,
    decisions,
    reported,
    resume,
    session_processes,
    stop_when,
    wait_for,
)

pytestmark = pytest.mark.slow


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


def test_ctrl_c_after_the_folder_exists_names_the_resume_once(stopped_in_stage2):
    """Ctrl-C once the plan is printed (the folder and its config.json exist, no trial yet): exit 130 and one
    resume hint, ours, not Tune's as well. (Its resume finishes: that sweep is stopped twice more and resumed
    to the uninterrupted answer in test_resume.py.)"""
    seen = json.loads((stopped_in_stage2.parent / "stops.json").read_text())["ctrl-c-at-the-plan"]
    output = seen["output"]
    assert seen["returncode"] == 130, output
    assert f"hindsight-ray resume {stopped_in_stage2}" in output and "Tuner.restore(" not in output, output
    assert output.count("hindsight-ray resume") == 1, output


def _session_process_named(sid: int, name: str) -> int | None:
    for pid in session_processes(sid):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                return pid
        except OSError:
            continue
    return None


@pytest.mark.parametrize(("process_name", "called"), [("raylet", "raylet"), ("gcs_server", "GCS server")])
def test_the_local_ray_dying_is_one_line_and_a_prompt_exit_and_resume_finishes(tmp_path, stopped_in_stage2, reference,
                                                                                process_name, called):
    """The sweep's own local Ray loses its raylet or its GCS server (killed, out of memory) once a trial has
    reported: one error line naming it and the resume command, exit 1 at once (not a minute of Ray waiting
    for a GCS that is gone), no Ray process of the sweep left behind, and resume reaches the uninterrupted
    answer. (The sweep is a copy of one stopped in stage 2, resumed: the Ray that dies is its resume's.)"""
    experiment = tmp_path / "lost"
    shutil.copytree(stopped_in_stage2, experiment)
    before = reported(experiment)
    process = cli("resume", str(experiment), cwd=tmp_path, start_new_session=True)
    victims = []

    def kill_it() -> None:
        victims.append(_session_process_named(process.pid, process_name))
        assert victims[0] is not None, f"no {process_name} among the sweep's processes"
        os.kill(victims[0], signal.SIGKILL)

    output = stop_when(process, lambda: reported(experiment) != before, kill_it, "its Ray could be killed")
    victim = victims[0]
    wait_for(lambda: not session_processes(process.pid), timeout=60)  # the rest of its Ray stopped too
    assert process.returncode == 1, output[-3000:]
    last = output.strip().splitlines()[-1]
    assert last.startswith(f"error: the local Ray stopped (its {called}, pid {victim}, exited with -9)"), output[-3000:]
    assert last.endswith(f"resume with  hindsight-ray resume {experiment}") and "Traceback" not in output
    resume(experiment, tmp_path)
    assert decisions(experiment) == reference


def test_sigterm_while_finalizing_is_exit_143_with_the_resume_line_and_resume_finishes(tmp_path, stopped_in_stage2,
                                                                                        reference):
    """SIGTERM once the test evaluation has written its predictions (the tables, the summary and the report
    still to come): the graceful stop, exit 143, the resume line, and resume reaches the same answer."""
    for attempt in range(3):
        # finalizing lasts a fraction of a second: on a loaded machine the signal can land once the summary
        # is written, and the sweep then ends as finished (exit 0, nothing to resume); try again on a new copy
        experiment = tmp_path / f"ending{attempt}"
        shutil.copytree(stopped_in_stage2, experiment)
        process = cli("resume", str(experiment), cwd=tmp_path, start_new_session=True)
        predictions, pid = experiment / "test_predictions.parquet", process.pid
        output = stop_when(process, predictions.exists, lambda pid=pid: os.kill(pid, signal.SIGTERM),
                           "it could be stopped while finalizing")
        if not (process.returncode == 0 and (experiment / "summary.json").exists()):
            break
    assert process.returncode == 143, output[-3000:]
    assert f"hindsight-ray resume {experiment}" in output.strip().splitlines()[-1] and "Traceback" not in output
    resume(experiment, tmp_path)
    assert decisions(experiment) == reference
