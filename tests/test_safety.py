"""An experiment folder is safe: one driver at a time, and resume only on the data the sweep started with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from hindsight_ray.cli import main
from hindsight_ray.config.schema import config_to_dict, load_config
from hindsight_ray.core.errors import UserError
from hindsight_ray.core.layout import CONFIG_FILE, FINGERPRINT_KEY
from hindsight_ray.data.sources import fingerprint
from hindsight_ray.running.lock_and_signals import LOCK_FILE, Interrupted, experiment_lock
from hindsight_ray.running.runner import resume_sweep

HOLD = """
import sys, time
from hindsight_ray.running.lock_and_signals import experiment_lock
with experiment_lock(sys.argv[1], create=False):
    print("held", flush=True)
    time.sleep(600)
"""


def hold_lock(folder) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_two_sweeps_with_one_name_one_is_refused(tmp_path):
    folder = tmp_path / "runs" / "same"
    with experiment_lock(str(folder), create=True):
        assert folder.is_dir()
        with pytest.raises(UserError, match="already exists; choose another --name"):
            with experiment_lock(str(folder), create=True):
                pass


def test_a_live_driver_holds_the_folder_and_a_dead_ones_lock_is_taken_over(tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    holder = hold_lock(folder)
    try:
        with pytest.raises(UserError, match=rf"in use by a running sweep \(pid {holder.pid} on "):
            with experiment_lock(str(folder), create=False):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding it: the kernel drops the lock
        holder.wait()
    assert json.loads((folder / LOCK_FILE).read_text())["pid"] == holder.pid  # the stale record is still there
    with experiment_lock(str(folder), create=False):
        assert json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()


def recorded_experiment(tmp_path, data_file):
    """An experiment folder as `sweep` leaves it before Ray's first snapshot."""
    config = load_config(None, [f"data.source={data_file}", "data.target=[y]"])
    experiment = tmp_path / "results" / "exp"
    experiment.mkdir(parents=True)
    (experiment / CONFIG_FILE).write_text(json.dumps(
        {**config_to_dict(config), FINGERPRINT_KEY: fingerprint(str(data_file))}))
    return experiment


def test_resume_of_a_live_sweep_is_refused_through_the_cli(tmp_path, capsys):
    data = tmp_path / "series.csv"
    data.write_text("y\n" + "\n".join(str(i % 7 + 1) for i in range(80)) + "\n")
    experiment = recorded_experiment(tmp_path, data)
    holder = hold_lock(experiment)
    try:
        assert main(["resume", str(experiment)]) == 2
        assert "is in use by a running sweep" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()


def test_resume_refuses_data_that_changed_since_the_sweep_started(tmp_path):
    data = tmp_path / "series.csv"
    data.write_text("y\n" + "\n".join(str(i % 7 + 1) for i in range(80)) + "\n")
    experiment = recorded_experiment(tmp_path, data)
    data.write_text("y\n" + "\n".join(str(i % 5 + 1) for i in range(80)) + "\n")  # edited in place
    with pytest.raises(UserError, match=r"resume exp: data.source .*series.csv changed since the sweep started"):
        resume_sweep(str(experiment))
    assert not (experiment / "summary.json").exists()


def test_data_paths_are_recorded_absolute(tmp_path, capsys, monkeypatch):
    (tmp_path / "series.csv").write_text("y\n" + "\n".join(str(i % 7 + 1) for i in range(80)) + "\n")
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "--dry-run", "--set", "data.source=series.csv", "--set", "data.target=y"]) == 0
    assert f"data        {tmp_path / 'series.csv'} (timeseries" in capsys.readouterr().out


def test_interrupted_names_the_signal_and_how_to_resume():
    error = Interrupted(signal.SIGTERM, "/data/exp")
    assert error.exit_code == 143 and "SIGTERM" in str(error) and "hindsight-ray resume /data/exp" in str(error)
    assert Interrupted(signal.SIGINT, "x").exit_code == 130
