"""The same sweeps on each Keras backend installed here, side by side in one run (CPU).

    python launch/bench_backends.py                 # every backend installed: tensorflow, jax, torch
    python launch/bench_backends.py --backends jax  # some of them
    python launch/bench_backends.py --quick         # smaller sweeps (a smoke run)

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

import numpy as np
import pandas as pd

from hindsight_ray.training.backend import BACKENDS, installed


def reviews(path: Path, rows: int, tokens: int, seed: int = 0) -> None:
    """IMDB-like reviews: 250 words from a 2,000-word vocabulary, a few of them carrying the label."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{i}" for i in range(2000)])
    good, bad = vocabulary[:20], vocabulary[20:40]
    texts, labels = [], []
    for i in range(rows):
        label = i % 2
        words = rng.choice(vocabulary[40:], tokens)
        marks = rng.choice(good if label else bad, 6)
        words[rng.choice(tokens, 6, replace=False)] = marks
        texts.append(" ".join(words))
        labels.append("positive" if label else "negative")
    pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)


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
    args = parser.parse_args()
    quick = ["search.stage1.layers=[1]", "search.stage1.units=[8,16]", "search.stage1.epochs=3",
             "search.stage2.max_iterations=1", "search.stage2.epochs=3"]
    airline = quick if args.quick else []
    rows, tokens = (400, 50) if args.quick else (4000, 250)
    text = ["data.kind=text", "data.num_words=2000", f"data.max_length={tokens}", "search.stage1.layers=[1]",
            "search.stage1.units=[16,32]", "search.stage1.epochs=3", "search.stage1.learning_rate=0.005",
            "search.stage2.max_iterations=2", "search.stage2.epochs=3", "model.batch_size=64"]
    lines = []
    with tempfile.TemporaryDirectory(prefix="hindsight-bench-backends-") as folder:
        storage = Path(folder)
        reviews(storage / "reviews.csv", rows, tokens)
        text.append(f"data.source={storage / 'reviews.csv'}")
        for name, settings in (("airline", airline), ("text", text)):
            for backend in args.backends:
                line = sweep(backend, storage, f"{name}-{backend}", settings)
                lines.append(line)
                if "error" in line:
                    print(f"{name:8s} {backend:10s} failed: {line['error']}")
                    continue
                print(f"{name:8s} {backend:10s} wall {line['wall_s']:6.1f} s  epoch {line['epoch_s_median']:.4f} s "
                      f"(median of {line['trials']} trials)  validation {line['validation']:.4f}  "
                      f"test {line['test']:.4f}", flush=True)
    print(json.dumps({"bench": "backends", "cpu": True, "results": lines}))


if __name__ == "__main__":
    main()
