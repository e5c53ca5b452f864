"""What MLflow tracking costs a sweep, against a real local MLflow server, side by side in one run.

    python launch/benchmarks/bench_mlflow.py --mlflow /path/to/venv/bin/mlflow   # an environment with the full mlflow
    python launch/benchmarks/bench_mlflow.py --rounds 3

Starts ``mlflow server`` on 127.0.0.1 (a free port, its own SQLite store and artifact folder; stopped by
pid), then runs the default airline sweep alternately without and with ``run.callbacks: [mlflow]``,
``--rounds`` times each. Prints each command's wall, the median ratio (with / without), and whether every
trial's run holds every epoch of ``epochs.parquet`` (``val_rmse`` steps).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(mlflow: str, folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen(
        [mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--default-artifact-root", str(folder / "art")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return server, uri
        except OSError:
            time.sleep(0.5)
    os.killpg(server.pid, signal.SIGTERM)
    sys.exit("mlflow server did not answer within 120 s")


def sweep(storage: Path, name: str, extra: list[str]) -> float:
    command = [sys.executable, "-m", "hindsight_ray", "sweep", "--storage", str(storage), "--name", name,
               "--no-report", *[a for s in extra for a in ("--set", s)]]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stdout[-2000:] + done.stderr[-2000:])
    return time.perf_counter() - began


def epochs_complete(uri: str, experiment: str, storage: Path, name: str) -> bool:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], "tags.`hindsight.role` = 'trial'")
    epochs = pd.read_parquet(storage / name / "epochs.parquet")
    want = {t: sorted(rows.epoch.astype(int)) for t, rows in epochs.groupby("trial_id")}
    got = {r.data.tags["hindsight.trial_id"]: sorted(m.step for m in client.get_metric_history(r.info.run_id,
                                                                                                 "val_rmse"))
           for r in runs}
    return got == want


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlflow", default=shutil.which("mlflow") or "mlflow", help="the mlflow command")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hindsight-bench-mlflow-") as folder:
        root = Path(folder)
        server, uri = start_server(args.mlflow, root)
        try:
            plain, tracked, complete = [], [], []
            for round_ in range(args.rounds):
                plain.append(sweep(root, f"plain-{round_}", []))
                name = f"tracked-{round_}"
                tracked.append(sweep(root, name, ["run.callbacks=[mlflow]", f"run.mlflow.tracking_uri={uri}",
                                                  f"run.mlflow.experiment={name}"]))
                complete.append(epochs_complete(uri, name, root, name))
                print(f"round {round_ + 1}: without {plain[-1]:.1f} s, with MLflow {tracked[-1]:.1f} s "
                      f"({tracked[-1] / plain[-1]:.2f}x), every epoch logged: {complete[-1]}", flush=True)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
    ratio = statistics.median(t / p for t, p in zip(tracked, plain, strict=True))
    print(json.dumps({"bench": "mlflow", "without_s": [round(p, 1) for p in plain],
                      "with_s": [round(t, 1) for t in tracked], "median_ratio": round(ratio, 3),
                      "every_epoch_logged": all(complete)}))


if __name__ == "__main__":
    main()
