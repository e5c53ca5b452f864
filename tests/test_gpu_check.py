"""launch/cluster/gpu_check.py: its arithmetic and wheel slimming (unit), and its --cpu run as the GPU machine would
see it: TensorFlow, Optuna, statsmodels and MLflow absent (blocked at import)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from hindsight_ray.training.backend import installed

ROOT = Path(__file__).resolve().parents[1]


def _module(path: str):
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_occupancy_counts_trials_at_once_and_the_share_of_slots_they_filled():
    check = _module("launch/cluster/gpu_check.py")
    trials = pd.DataFrame({"stage": [1, 1, 1, 1, 2], "started_at": [0.0, 0.0, 1.0, 5.0, 10.0],
                           "finished_at": [4.0, 6.0, 5.0, 8.0, 12.0]})
    assert check.occupancy(trials, 4) == {"max_at_once": 3, "slot_use": round((4 + 6 + 4 + 3) / (4 * 8), 3)}


def test_rays_wheel_is_written_again_without_its_java_jars(tmp_path):
    fetch = _module("launch/cluster/gpu/fetch_wheels.py")
    wheel = tmp_path / "ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("ray/__init__.py", "")
        archive.writestr("ray/jars/ray_dist.jar", b"x" * 1000)
        archive.writestr("ray-2.60.0.dist-info/RECORD", "ray/__init__.py,,\nray/jars/ray_dist.jar,,\n")
    slim = fetch.without_jars(wheel)
    with zipfile.ZipFile(slim) as archive:
        assert archive.namelist() == ["ray/__init__.py", "ray-2.60.0.dist-info/RECORD"]
        assert archive.read("ray-2.60.0.dist-info/RECORD") == b"ray/__init__.py,,\n"
    assert not wheel.exists()


BLOCKER = '''
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("tensorflow", "optuna", "statsmodels", "mlflow"):
            raise ImportError(f"{name}: not on the GPU machine")
sys.meta_path.insert(0, Refuse())
'''


@pytest.mark.slow
@pytest.mark.skipif(not installed("jax"), reason="jax is not installed")
def test_the_gpu_check_runs_on_cpu_without_tensorflow(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    env.pop("KERAS_BACKEND", None)
    done = subprocess.run([sys.executable, str(ROOT / "launch/cluster/gpu_check.py"), "--cpu", "--backends", "jax",
                           "--out", str(tmp_path / "check.json")], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == json.loads((tmp_path / "check.json").read_text())
    jax = result["backends"]["jax"]
    assert jax["device"] == "cpu" and jax["cudnn_ran"] is False and "error" not in jax
    assert len(jax["trials"]) == 2 + 2 and all(t["epoch_s"] > 0 for t in jax["trials"])
    assert jax["occupancy"]["max_at_once"] == 2 and 0 < jax["occupancy"]["slot_use"] <= 1
    assert 0 <= jax["best_test_accuracy"] <= 1
