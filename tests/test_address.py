"""`--address` to a running Ray cluster that requires token authentication (as `ray start` sets up)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.spawn import die_with_pytest
from tests.test_s3 import free_port

pytestmark = pytest.mark.slow


@pytest.fixture()
def token_cluster():
    """A head started as a user would (``ray start --head``, token authentication on), under this test's own
    temp dir and process group, stopped by pid: never the machine-wide stop command, which ends every
    Ray on the machine."""
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    temp_dir = tempfile.mkdtemp(prefix="hr-head-", dir="/tmp")  # short: Ray's socket paths have a length limit
    port = free_port()
    # ports found free, not Ray's defaults (10001, 52365), which another Ray on this machine may hold
    free = [f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}"]
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", "--num-cpus=2", f"--port={port}", *free,
                             "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=die_with_pytest)
    try:
        deadline = time.monotonic() + 120
        while not _listening(port):
            assert head.poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, "ray start --head did not come up in 120 s"
            time.sleep(0.5)
        yield {"env": env, "address": f"127.0.0.1:{port}"}
    finally:
        _stop_group(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, to the head's own process group (the head and the processes it started)."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(process.pid, signal.SIGKILL)  # children the head left behind in its group
    except ProcessLookupError:
        pass


def client_env(head_env: dict[str, str]) -> dict[str, str]:
    """The user's shell: the token ``ray start`` left in ~/.ray/auth_token, and no RAY_AUTH_MODE (the client
    finds the token itself)."""
    return {key: value for key, value in head_env.items() if key != "RAY_AUTH_MODE"}


def test_sweep_runs_on_a_token_protected_cluster(token_cluster, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hindsight_ray", "sweep", "--address", token_cluster["address"],
         "--storage", str(tmp_path), "--name", "remote", "--no-report", "--set", "search.stage1.layers=[1]",
         "--set", "search.stage1.units=[4]", "--set", "search.stage1.epochs=2",
         "--set", "search.stage2.max_iterations=1", "--set", "search.stage2.epochs=2"],
        env={**client_env(token_cluster["env"]), "PYTHONWARNINGS": "ignore"}, capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "remote" / "summary.json").read_text())
    assert summary["trials_run"] == 3 and summary["best"] is not None
