"""Damage that a resume must see through: a searcher state cut short or lost, a disk that fills mid-sweep."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

import pandas as pd
import pytest

from tests.faults import cli, decisions, reported, session_processes, wait_for

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_a_damaged_or_lost_searcher_state_is_rebuilt_from_rays_trials(tmp_path, stopped_in_stage2, reference,
                                                                       damage):
    """Interrupted in stage 2, then the two-stage decisions file cut to 200 bytes (a full disk) or gone:
    resume rebuilds the decisions from the trials Ray recorded and reaches the uninterrupted answer, with
    every finished trial kept. (One sweep interrupted in stage 2, copied for each damage: a moved folder resumes.)"""
    experiment = tmp_path / "damaged"
    original = stopped_in_stage2
    before = sorted(p.name for p in original.iterdir())
    shutil.copytree(original, experiment)
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
    # the copy's new trials ran in the copy: Ray's saved search algorithm still named the original folder
    assert sorted(p.name for p in original.iterdir()) == before


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


def test_a_full_disk_stops_the_sweep_in_one_line_and_resume_finishes_it(small_disk, stopped_in_stage2, reference):
    """The storage fills while the trials run: one error line naming the folder, exit 2, no retries spent
    and Ray's previous snapshot whole; once there is space again, resume reaches the uninterrupted answer.
    (The sweep is a copy of the shared one stopped in stage 2, on the small disk, resumed: it fills there.)"""
    experiment = small_disk / "full"
    shutil.copytree(stopped_in_stage2, experiment)
    before = reported(experiment)
    filler = small_disk / "filler"
    out = filler.open("wb")  # opened while there is space
    process = cli("resume", str(experiment), cwd=small_disk.parent, start_new_session=True)
    try:
        wait_for(lambda: reported(experiment) != before or process.poll() is not None)
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
