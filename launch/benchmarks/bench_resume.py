"""How long a killed sweep takes to get back to work, and how many epochs it loses.

    python launch/benchmarks/bench_resume.py

Starts the default sweep (with `run.checkpoint_every` as given, default 1) in its own process
group, SIGKILLs the whole group once some stage-1 trial has checkpointed its 5th epoch or later, runs
`hindsight-ray resume`, and prints: the seconds from `resume` to the first epoch reported after
it, and the epochs trained twice (reported before the kill and again after it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def results(experiment: Path) -> dict[str, list[dict]]:
    out = {}
    for path in experiment.glob("train_lstm_*/result.json"):
        out[path.parent.name] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def main() -> None:
    storage = Path(tempfile.mkdtemp(prefix="hindsight-resume-"))
    experiment = storage / "killed"
    command = [sys.executable, "-m", "hindsight_ray", "sweep", "--storage", str(storage), "--name", "killed",
               "--no-report", *sys.argv[1:]]
    sweep = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # older checkpoints are deleted as new ones come: wait for any stage-1 checkpoint from the 5th epoch on
    while not any(int(p.name.split("_")[1]) >= 4 for p in experiment.glob("train_lstm_*stage=1*/checkpoint_*")):
        time.sleep(0.02)
    os.killpg(sweep.pid, signal.SIGKILL)
    sweep.wait()
    before = {name: len(rows) for name, rows in results(experiment).items()}
    time.sleep(2)  # let the killed Ray processes go
    began = time.time()
    resume = subprocess.Popen([sys.executable, "-m", "hindsight_ray", "resume", str(experiment)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    back = None
    while resume.poll() is None:
        if back is None:
            now = results(experiment)
            if any(rows[before.get(name, 0):] for name, rows in now.items()):
                back = time.time()
        time.sleep(0.1)
    repeated = 0
    for rows in results(experiment).values():
        epochs = [row["epoch"] for row in rows]
        repeated += len(epochs) - len(set(epochs))
    summary = json.loads((experiment / "summary.json").read_text())
    print(f"resume           exit code {resume.returncode}, {time.time() - began:.1f} s to finish the sweep")
    print(f"back to work     {back - began:.1f} s from `hindsight-ray resume` to the first new epoch reported"
          if back else "back to work     no new epoch seen")
    print(f"epochs lost      {repeated} trained twice in all (checkpoint_every as configured)")
    print(f"finished         best layers={summary['best']['layers']} units={summary['best']['units']} "
          f"lr={summary['best']['learning_rate']:g} val={summary['best']['validation']:.4g}")


if __name__ == "__main__":
    main()
