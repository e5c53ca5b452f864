"""`--address` to a running Ray cluster that requires token authentication (as `ray start` sets up)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
PORT = "6391"


@pytest.fixture()
def token_cluster():
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    started = subprocess.run([ray_cli, "start", "--head", "--num-cpus=2", f"--port={PORT}", "--include-dashboard=false",
                              "--disable-usage-stats"], env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr[-2000:]
    yield env
    subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120)


def test_sweep_runs_on_a_token_protected_cluster(token_cluster, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hindsight_ray", "sweep", "--address", f"127.0.0.1:{PORT}", "--storage", str(tmp_path),
         "--name", "remote", "--no-report", "--set", "search.stage1.layers=[1]", "--set", "search.stage1.units=[4]",
         "--set", "search.stage1.epochs=2", "--set", "search.stage2.max_iterations=1", "--set",
         "search.stage2.epochs=2"],
        env={**token_cluster, "PYTHONWARNINGS": "ignore"}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "remote" / "summary.json").read_text())
    assert summary["trials_run"] == 3 and summary["best"] is not None
