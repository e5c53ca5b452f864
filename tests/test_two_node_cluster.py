"""A real two-node Ray cluster, as a cluster user starts one: a token-protected head (``ray start --head --block``
with its own ports, temp dir and dashboard on 127.0.0.1) and a worker node (``ray start --address``), both
started here and stopped by pid. A sweep through ``--address`` spreads over both nodes; a Ray Client sweep
stopped by Ctrl-C exits 130 and its resume, over Ray Client too, finishes; ``ray job submit`` runs a sweep; the worker's
raylet killed mid stage 1 retries its trial from its checkpoint.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.faults import wait_for
from tests.spawn import die_with_pytest
from tests.test_address import _listening, _stop_group
from tests.test_s3 import free_port

pytestmark = pytest.mark.slow
TINY = ["--set=search.stage1.layers=[1]", "--set=search.stage1.units=[4,8]", "--set=search.stage1.epochs=4",
        "--set=search.stage2.max_iterations=1", "--set=search.stage2.epochs=2", "--set=data.lags=6"]


def ray_cli() -> str:
    return shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray") or "ray"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Head and worker node, one CPU each (two trial slots, one per node), a token of their own."""
    pytest.importorskip("ray.dashboard.modules.job")  # ray[default], in the cluster extra
    # every port found free, none of Ray's defaults: `ray start` binds its dashboard agent to 52365 and its
    # client server to 10001, which another Ray on this machine (a user's, a parallel test's) may hold; a head
    # whose agent cannot bind answers job submissions with "No available agent to submit job"
    ports = {name: free_port() for name in ("gcs", "client", "dashboard", "head_agent", "worker_agent")}
    token = secrets.token_hex(32)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "PYTHONWARNINGS": "ignore"}
    temp_dir = tempfile.mkdtemp(prefix="hr-2n-", dir="/tmp")  # short: Ray's socket paths have a length limit
    started: list[subprocess.Popen] = []
    try:
        started.append(subprocess.Popen(
            [ray_cli(), "start", "--head", "--block", "--num-cpus=1", f"--port={ports['gcs']}",
             f"--ray-client-server-port={ports['client']}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
             f"--dashboard-port={ports['dashboard']}", f"--dashboard-agent-listen-port={ports['head_agent']}",
             "--disable-usage-stats", f"--temp-dir={temp_dir}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_pytest))
        deadline = time.monotonic() + 180
        while not (_listening(ports["gcs"]) and _listening(ports["dashboard"]) and _listening(ports["client"])):
            assert started[0].poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, "the head did not come up in 180 s"
            time.sleep(0.5)
        started.append(subprocess.Popen(
            [ray_cli(), "start", f"--address=127.0.0.1:{ports['gcs']}", "--block", "--num-cpus=1",
             f"--dashboard-agent-listen-port={ports['worker_agent']}", "--disable-usage-stats"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_pytest))
        probe = ("import ray, time\nray.init(address='127.0.0.1:GCS', log_to_driver=False)\n"
                 "while sum(n['Alive'] for n in ray.nodes()) < 2: time.sleep(0.5)\n"
                 "print(sorted(n['NodeID'] for n in ray.nodes() if n['Alive']))").replace("GCS", str(ports["gcs"]))
        nodes = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=180)
        assert nodes.returncode == 0, nodes.stderr[-2000:]
        yield {"env": env, "ports": ports, "head": started[0], "worker": started[1], "temp_dir": temp_dir}
    finally:
        for process in reversed(started):
            _stop_group(process)
        shutil.rmtree(temp_dir, ignore_errors=True)


def client_env(cluster: dict) -> dict[str, str]:
    """A user's shell with the cluster's token (the client sets RAY_AUTH_MODE itself when it finds one)."""
    return {k: v for k, v in cluster["env"].items() if k != "RAY_AUTH_MODE"}


def sweep(address: str, storage: Path, name: str, env: dict, *extra: str, timeout: float = 600):
    return subprocess.run([sys.executable, "-m", "hindsight_ray", "sweep", "--address", address, "--storage",
                           str(storage), "--name", name, "--no-report", *TINY, *extra],
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_a_sweep_through_the_address_runs_on_both_nodes(cluster, tmp_path):
    result = sweep(f"127.0.0.1:{cluster['ports']['gcs']}", tmp_path, "both", client_env(cluster))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    trials = pd.read_parquet(tmp_path / "both" / "trials.parquet")
    stage1 = trials[trials.stage == 1]
    assert stage1.node_id.nunique() == 2, stage1[["trial_id", "node_id"]]
    assert json.loads((tmp_path / "both" / "summary.json").read_text())["best"] is not None


def test_ctrl_c_over_ray_client_exits_130_and_its_resume_over_ray_client_finishes(cluster, tmp_path):
    """A Ray Client sweep stopped by Ctrl-C in stage 1 (exit 130, the resume line), then resumed (over Ray
    Client again: the address is the experiment's) to its end, not "interrupted"."""
    address = f"ray://127.0.0.1:{cluster['ports']['client']}"
    experiment = tmp_path / "stopped"
    process = subprocess.Popen(
        [sys.executable, "-m", "hindsight_ray", "sweep", "--address", address, "--storage", str(tmp_path),
         "--name", "stopped", "--no-report", *TINY, "--set=search.stage1.epochs=12"],
        env=client_env(cluster), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=die_with_pytest)
    try:
        wait_for(lambda: any(experiment.glob("train_lstm_*stage=1*/checkpoint_*")) or process.poll() is not None)
        assert process.poll() is None, "the sweep ended before it could be interrupted"
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, output[-3000:]
    assert f"hindsight-ray resume {experiment}" in output and "Traceback" not in output
    assert not (experiment / "summary.json").exists()
    time.sleep(2)  # the head's Tune actor was ended: no second writer beside the resumed sweep
    resumed = subprocess.run([sys.executable, "-m", "hindsight_ray", "resume", str(experiment)],
                             env=client_env(cluster), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    assert "interrupted" not in resumed.stdout + resumed.stderr
    summary = json.loads((experiment / "summary.json").read_text())
    assert summary["trials_run"] == 4 and summary["best"] is not None


def test_ray_job_submit_runs_a_sweep(cluster, tmp_path):
    entrypoint = " ".join([sys.executable, "-m", "hindsight_ray", "sweep", "--storage", str(tmp_path), "--name",
                           "job", "--no-report", *TINY])
    deadline = time.monotonic() + 120
    while True:  # the head's job agent can come up after its dashboard answers: Ray says "try again later"
        result = subprocess.run(
            [ray_cli(), "job", "submit", "--address", f"http://127.0.0.1:{cluster['ports']['dashboard']}", "--",
             *entrypoint.split()], env=cluster["env"], capture_output=True, text=True, timeout=600)
        if "No available agent to submit job" not in result.stderr or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "succeeded" in result.stdout, result.stdout[-3000:]
    trials = pd.read_parquet(tmp_path / "job" / "trials.parquet")
    assert len(trials) == 4 and trials[trials.stage == 1].node_id.nunique() == 2  # the job's driver joined the cluster


def _raylet_of(node_id: str) -> int:
    """The raylet of the node ``node_id`` (its command line names the node)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "raylet":
                continue
            if f"--node_id={node_id}".encode() in (entry / "cmdline").read_bytes().replace(b"\0", b" "):
                return int(entry.name)
        except OSError:
            continue
    raise AssertionError(f"no raylet found for node {node_id}")


def test_the_worker_nodes_raylet_killed_mid_stage1_retries_its_trial_from_its_checkpoint(cluster, tmp_path):
    """Last in this module: the worker node does not come back."""
    import threading

    probe = ("import ray; ray.init(address='127.0.0.1:GCS', log_to_driver=False); print([n['NodeID'] for n in "
             "ray.nodes() if n['Alive'] and 'node:__internal_head__' not in n['Resources']][0])")
    probe = probe.replace("GCS", str(cluster["ports"]["gcs"]))
    worker_node = subprocess.run([sys.executable, "-c", probe], env=cluster["env"],
                                 capture_output=True, text=True, timeout=120).stdout.split()[-1]
    experiment, killed = tmp_path / "raylet", {}

    def kill_when_a_worker_trial_checkpointed() -> None:
        deadline = time.time() + 300
        while time.time() < deadline:
            for result in experiment.glob("train_lstm_*stage=1*/result.json"):
                lines = result.read_text().splitlines()
                if len(lines) >= 4 and json.loads(lines[-1])["node_id"] == worker_node and any(
                        result.parent.glob("checkpoint_*")):
                    killed.update(trial_id=json.loads(lines[-1])["trial_id"], epoch=json.loads(lines[-1])["epoch"])
                    os.kill(_raylet_of(worker_node), signal.SIGKILL)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_a_worker_trial_checkpointed, daemon=True)
    killer.start()
    result = sweep(f"127.0.0.1:{cluster['ports']['gcs']}", tmp_path, "raylet", client_env(cluster),
                   "--set=search.stage1.epochs=16", "--set=run.checkpoint_every=2", "--set=run.report_seconds=0")
    killer.join()
    assert killed, "no trial ran on the worker node"
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    trials = pd.read_parquet(experiment / "trials.parquet").set_index("trial_id")
    victim = trials.loc[killed["trial_id"]]
    # (where the retry runs depends on how soon Ray declares the node dead: its worker process can outlive
    # the raylet for a while, so either node may finish the trial)
    assert victim.status == "TERMINATED" and victim.retries >= 1
    reported = [json.loads(line)["epoch"] for line in
                next(experiment.glob(f"train_lstm_{killed['trial_id']}_*/result.json")).read_text().splitlines()]
    assert reported.count(1) == 1, reported  # the retry went on from its checkpoint, not from epoch 1
    # every epoch before the kill, and the last; a result in flight when the node died can be lost with it
    # (its epoch was trained: the retry goes on from a later checkpoint)
    assert set(range(1, killed["epoch"] + 1)) <= set(reported) and max(reported) == 16
