"""The same sweeps on each Keras backend installed here, side by side in one run (CPU).

    python launch/benchmarks/bench_backends.py                 # every backend installed: tensorflow, jax, torch
    python launch/benchmarks/bench_backends.py --backends jax  # some of them
    python launch/benchmarks/bench_backends.py --quick         # smaller sweeps (a smoke run)
    python launch/benchmarks/bench_backends.py --sweeps text --seeds 0 1 2   # model quality across seeds

Two sweeps per backend, each a fresh ``hindsight-ray sweep`` command (its own local Ray):
the default airline sweep, and a text sweep on 4,000 generated reviews of 250 tokens. Prints one line
per sweep: the command's wall, the median epoch seconds of its trials (from ``epochs.parquet``), its
best validation and test score; then one JSON line with all of it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from gpu_check import reviews  # launch/cluster/gpu_check.py: the same generated reviews

from hindsight_ray.training.backend import BACKENDS, installed


def sweep(backend: str, storage: Path, name: str, settings: list[str]) -> dict:
    command = [sys.executable, "-m", "hindsight_ray", "sweep", "--storage", str(storage), "--name", name,
               "--no-report", "--set", f"model.backend={backend}", *[a for s in settings for a in ("--set", s)]]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        return {"backend": backend, "sweep": name, "error": done.stdout[-500:] + done.stderr[-500:]}
    summary = json.loads((storage / name / "summary.json").read_text())
    epochs = pd.read_parquet(storage / name / "epochs.parquet")
    best = summary["best"]
    test = next(v for k, v in best.items() if k.startswith("test_") and isinstance(v, float))
    return {
        "backend": backend,
        "sweep": name,
        "wall_s": round(wall, 1),
        "epoch_s_median": round(float(epochs["epoch_s"].median()), 4),
        "trials": int(epochs["trial_id"].nunique()),
        "validation": round(float(best["validation"]), 4),
        "test": round(float(test), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="*", default=[b for b in BACKENDS if installed(b)])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sweeps", nargs="*", default=["airline", "text"], choices=["airline", "text"])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0], help="the sweeps' seed (weights, shuffles)")
    args = parser.parse_args()
    quick = ["search.stage1.layers=[1]", "search.stage1.units=[8,16]", "search.stage1.epochs=3",
             "search.stage2.max_iterations=1", "search.stage2.epochs=3"]
    airline = quick if args.quick else []
    rows, tokens = (400, 50) if args.quick else (4000, 250)
    text = ["data.kind=text", "data.num_words=2000", f"data.max_length={tokens}", "search.stage1.layers=[1]",
            "search.stage1.units=[16,32]", "search.stage1.epochs=5", "search.stage1.learning_rate=0.005",
            "search.stage2.max_iterations=2", "search.stage2.epochs=5", "model.batch_size=64"]
    lines = []
    with tempfile.TemporaryDirectory(prefix="hindsight-bench-backends-") as folder:
        storage = Path(folder)
        reviews(storage / "reviews.csv", rows, tokens, vocabulary=2000)
        text.append(f"data.source={storage / 'reviews.csv'}")
        for name, settings in (("airline", airline), ("text", text)):
            if name not in args.sweeps:
                continue
            for seed in args.seeds:
                for backend in args.backends:
                    line = sweep(backend, storage, f"{name}-{backend}-{seed}", [*settings, f"seed={seed}"])
                    lines.append({**line, "seed": seed})
                    if "error" in line:
                        print(f"{name:8s} {backend:10s} seed {seed} failed: {line['error']}")
                        continue
                    print(f"{name:8s} {backend:10s} seed {seed} wall {line['wall_s']:6.1f} s  epoch "
                          f"{line['epoch_s_median']:.4f} s (median of {line['trials']} trials)  validation "
                          f"{line['validation']:.4f}  test {line['test']:.4f}", flush=True)
    print(json.dumps({"bench": "backends", "cpu": True, "results": lines}))


if __name__ == "__main__":
    main()
