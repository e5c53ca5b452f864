"""GPUs and nodes without the hardware: logical GPUs, a simulated multi-node cluster, cluster.yaml."""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hindsight_ray.config.schema import load_config
from hindsight_ray.core.errors import UserError
from hindsight_ray.running.cluster import trial_slots
from hindsight_ray.running.runner import run_sweep
from hindsight_ray.training.backend import DEFAULT, worker_env

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def max_overlap(rows: pd.DataFrame) -> int:
    events = sorted([(t, 1) for t in rows.started_at] + [(t, -1) for t in rows.finished_at], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_cluster_yaml_passes_rays_own_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    prepared = prepare_config(config)
    validate_config(prepared)
    types = prepared["available_node_types"]
    head, worker = types[prepared["head_node_type"]], types["gpu_worker"]
    assert head["resources"].get("GPU", 0) == 0 and worker["resources"]["GPU"] >= 1
    assert worker["min_workers"] <= worker["max_workers"]
    start = " ".join(prepared["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start and "RAY_AUTH_MODE=token" in start
    assert any("auth_token" in target for target in prepared["file_mounts"])
    # Ray's AWS node provider on the head imports boto3, and job submission needs the dashboard: both come
    # with the project's cluster extra, which every node installs
    install = " ".join(prepared["setup_commands"])
    assert "hindsight-ray[cluster]" in install
    # the Keras backend's GPU wheels: the line installs what BACKEND names (run with pip replaced by echo)
    line = next(c for c in prepared["setup_commands"] if "BACKEND=" in c)
    for backend, wheel in (("tensorflow", "tensorflow[and-cuda]>=2.21,<3"), ("torch", "torch"), ("jax", "jax[cuda12]")):
        script = line.replace("BACKEND=tensorflow", f"BACKEND={backend}").replace("~/venv/bin/pip install -q", "echo")
        shown = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.split()
        assert shown[0] == wheel, (backend, shown)
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("boto3") for d in extras["cluster"]) and any(d.startswith("ray[default]")
                                                                          for d in extras["cluster"])
    assert "hindsight-ray[cluster]" in extras["test"]
    # Ray gives the head an instance profile, never the workers: theirs is named here
    profile = worker["node_config"]["IamInstanceProfile"]["Arn"]
    assert profile.startswith("arn:aws:iam::") and profile.endswith(":instance-profile/hindsight-ray-worker")


@pytest.fixture()
def gpu_ray():
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": worker_env(DEFAULT)})
    yield ray
    ray.shutdown()


def test_half_gpus_pack_four_trials_on_two_gpus(gpu_ray, tmp_path):
    config = load_config(None, [
        "resources.gpus_per_trial=0.5", "search.stage2.speculative=false",  # stage 2 one trial at a time
        "search.stage1.layers=[1,2]", "search.stage1.units=[4,8]",
        "search.stage1.epochs=15", "search.stage2.max_iterations=1", "search.stage2.epochs=2", "data.lags=6",
        f"storage={tmp_path}", "name=gpus",
    ])
    assert trial_slots(config) == 4
    summary = run_sweep(config, echo=lambda line: None)
    trials = pd.read_parquet(tmp_path / "gpus" / "trials.parquet")
    stage1, stage2 = trials[trials.stage == 1], trials[trials.stage == 2]
    assert max_overlap(stage1) == 4, "four half-GPU trials did not run at once"
    assert sorted(stage1.gpu_ids) == ["0", "0", "1", "1"]  # two trials packed on each GPU
    assert max_overlap(stage2) == 1 and all(ids in ("0", "1") for ids in stage2.gpu_ids)
    gpus = summary["utilization"]["gpus"]
    assert len(gpus) == 2 and all(0 < g["busy_share"] <= 1 for g in gpus.values())


def test_gpus_on_a_cpu_only_cluster_fail_fast(local_ray):
    """The live nodes, as Ray reports them (tests/test_cluster_checks.py covers the rules on fake nodes)."""
    config = load_config(None, ["resources.gpus_per_trial=0.5"])
    with pytest.raises(UserError, match="asks for GPUs, but the cluster has none"):
        trial_slots(config)


def test_a_local_ray_started_while_another_holds_rays_agent_port_waits_for_neither_it_nor_idle_workers(tmp_path):
    """Another Ray on this machine (here: a socket) holds 52365, Ray's fixed dashboard-agent port: the sweep's
    own local Ray gives its agent a port found free, so the agent never retries 52365 (about 3 s of every
    start) and the node comes up on the other port."""
    import socket

    import ray

    from hindsight_ray.running.cluster import start_ray

    if ray.is_initialized():
        ray.shutdown()
    held = socket.socket()
    try:
        try:
            held.bind(("0.0.0.0", 52365))
            held.listen()
        except OSError:
            pass  # someone else on this machine holds it already: as good
        assert start_ray(load_config(None, []))
        try:
            node = ray._private.worker.global_worker.node
            assert node.dashboard_agent_listen_port not in (None, 52365)
            log = Path(node.get_logs_dir_path()) / "dashboard_agent.log"
            assert "Failed to bind to port 52365" not in (log.read_text() if log.exists() else "")
            # and no idle workers prestarted for this driver (one per CPU, without the sweep's environment:
            # never used by a trial, they only took CPU while the first trials' workers started)
            import time

            import psutil

            raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
            time.sleep(1.0)  # Ray prestarts them as the driver registers: they would be there by now
            titles = [" ".join(p.cmdline()) for p in raylet.children()]
            assert not [t for t in titles if t.startswith("ray::IDLE")], titles
        finally:
            ray.shutdown()
    finally:
        held.close()


def test_trials_spread_over_nodes_and_survive_a_node_removal(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                            "dashboard_host": "127.0.0.1"})
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    try:
        ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": worker_env(DEFAULT)})
        config = load_config(None, [
            "search.stage1.layers=[1]", "search.stage1.units=[4,8]", "search.stage1.epochs=30",
            "search.stage2.max_iterations=1", "search.stage2.epochs=2", "data.lags=6", "run.checkpoint_every=2",
            "run.report_seconds=0",  # every epoch its own report: the move between nodes is checked epoch by epoch
            f"storage={tmp_path}", "name=nodes",
        ])
        experiment = tmp_path / "nodes"
        removed: dict[str, object] = {}
        doomed = nodes[1]

        def remove_a_busy_node() -> None:
            deadline = time.time() + 300
            while time.time() < deadline:
                for path in experiment.glob("train_lstm_*stage=1*/result.json"):
                    lines = path.read_text().splitlines()
                    if len(lines) >= 5 and json.loads(lines[-1])["node_id"] == doomed.node_id:
                        removed.update(trial_id=json.loads(lines[-1])["trial_id"])
                        cluster.remove_node(doomed)
                        return
                time.sleep(0.1)

        remover = threading.Thread(target=remove_a_busy_node, daemon=True)
        remover.start()
        summary = run_sweep(config, echo=lambda line: None)
        remover.join()
        assert removed, "no trial ran on the node to remove"
        trials = pd.read_parquet(experiment / "trials.parquet").set_index("trial_id")
        victim = trials.loc[removed["trial_id"]]
        assert victim.status == "TERMINATED" and victim.retries >= 1
        assert victim.node_id == nodes[0].node_id  # finished on the surviving node
        result_file = next(experiment.glob(f"train_lstm_{removed['trial_id']}_*/result.json"))
        reported = [json.loads(line) for line in result_file.read_text().splitlines()]
        assert {r["node_id"] for r in reported} == {n.node_id for n in nodes}  # it ran on both
        assert sorted({r["epoch"] for r in reported}) == list(range(1, 31))
        assert summary["best"] is not None
        stage1 = trials[trials.stage == 1]
        assert stage1.node_id.notna().all()
    finally:
        ray.shutdown()
        cluster.shutdown()
