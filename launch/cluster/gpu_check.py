"""The GPU check: real sweeps with four trials packed on one GPU (``resources.gpus_per_trial: 0.25``), on
Keras' PyTorch and JAX backends, on an IMDB-sized text task made on the spot; one JSON line of figures.

    python launch/cluster/gpu_check.py                      # on a GPU machine (see launch/cluster/gpu/README.md)
    python launch/cluster/gpu_check.py --cpu --backends jax # here: the same steps on a tiny budget, no GPU

The task: 25,000 reviews of 250 tokens over a 20,000-word vocabulary (a few words carry the label),
Embedding + LSTM with 64..256 units, stage 1 of four architectures at once, then stage 2. Each backend's
sweep is its own ``hindsight-ray sweep`` command (its own local Ray). Printed, per backend: the command's
wall, epoch seconds per trial, each trial's GPU memory peak, whether the cuDNN kernel ran (a probe that
counts calls into Keras' cuDNN LSTM, beside each trial's record of the kernel's conditions), the packing
occupancy of stage 1 (most trials at once, and the share of four slots x its span that trials filled),
and the best test accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROBE = """
import json, sys
import numpy as np
from hindsight_ray.training import backend as backends
keras = backends.configure(sys.argv[1], 1, gpus=1, deterministic=False)
from keras.src import backend as kb
calls = {"cudnn": 0}
inner = kb.lstm
def counted(*args, **kwargs):
    out = inner(*args, **kwargs)  # raises NotImplementedError where the cuDNN kernel cannot run
    calls["cudnn"] += 1
    return out
kb.lstm = counted
model = keras.Sequential([keras.Input((20,)), keras.layers.Embedding(100, 16), keras.layers.LSTM(16),
                          keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="rmsprop", loss="binary_crossentropy")
x = np.random.default_rng(0).integers(0, 100, (64, 20)).astype("int32")
model.train_on_batch(x, np.ones((64, 1), "float32"))
device = backends.device_name(sys.argv[1])
# Keras' fused LSTM: cuDNN's kernel on a GPU (PyTorch's backend runs its fused CPU kernel there too)
print(json.dumps({"fused_lstm_ran": calls["cudnn"] > 0, "cudnn_ran": calls["cudnn"] > 0 and device != "cpu",
                  "device": device}))
"""


def reviews(path: Path, rows: int, tokens: int, vocabulary: int, seed: int = 0) -> None:
    """IMDB-like reviews: ``tokens`` words from a ``vocabulary``-word list, six of them carrying the label."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(vocabulary)])
    good, bad, rest = words[:20], words[20:40], words[40:]
    texts, labels = [], []
    for i in range(rows):
        label = i % 2
        review = rng.choice(rest, tokens)
        review[rng.choice(tokens, 6, replace=False)] = rng.choice(good if label else bad, 6)
        texts.append(" ".join(review))
        labels.append("positive" if label else "negative")
    pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)


def occupancy(trials: pd.DataFrame, slots: int) -> dict:
    """Stage 1's packing: the most trials running at once, and trial-seconds / (slots x stage 1's span)."""
    stage1 = trials[trials.stage == 1].dropna(subset=["started_at", "finished_at"])
    if stage1.empty:
        return {"max_at_once": 0, "slot_use": 0.0}
    events = sorted([(t, 1) for t in stage1.started_at] + [(t, -1) for t in stage1.finished_at])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    span = stage1.finished_at.max() - stage1.started_at.min()
    used = float((stage1.finished_at - stage1.started_at).sum())
    return {"max_at_once": int(most), "slot_use": round(used / (slots * span), 3) if span > 0 else 0.0}


def sweep(backend: str, storage: Path, settings: list[str], timeout: float, slots: int) -> dict:
    name = f"text-{backend}"
    command = [sys.executable, "-m", "hindsight_ray", "sweep", "--storage", str(storage), "--name", name,
               "--no-report", *[a for s in [f"model.backend={backend}", *settings] for a in ("--set", s)]]
    began = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"the sweep ran past {timeout:.0f} s"}
    wall = time.perf_counter() - began
    if done.returncode != 0:
        return {"error": (done.stdout + done.stderr)[-1500:], "wall_s": round(wall, 1)}
    experiment = storage / name
    summary = json.loads((experiment / "summary.json").read_text())
    trials = pd.read_parquet(experiment / "trials.parquet")
    epochs = pd.read_parquet(experiment / "epochs.parquet")
    per_trial = []
    for row in trials.itertuples():
        mine = epochs[epochs.trial_id == row.trial_id]
        peak = getattr(row, "gpu_peak_bytes", None)
        per_trial.append({
            "stage": int(row.stage), "units": int(row.units), "learning_rate": float(row.learning_rate),
            "epoch_s": round(float(mine.epoch_s.median()), 3) if len(mine) else None,
            "gpu_peak_mib": None if peak is None or pd.isna(peak) else round(float(peak) / 2**20, 1),
            "cudnn_conditions": bool(row.cudnn) if row.cudnn is not None and not pd.isna(row.cudnn) else None,
            "gpu_ids": row.gpu_ids,
        })
    return {
        "wall_s": round(wall, 1),
        "trials": per_trial,
        "occupancy": occupancy(trials, slots),
        "best_test_accuracy": summary["best"].get("test_accuracy"),
        "best_validation": summary["best"].get("validation"),
        "best": {k: summary["best"][k] for k in ("layers", "units", "learning_rate")},
    }


def probe(backend: str) -> dict:
    """Whether Keras' cuDNN LSTM runs on ``backend`` here (a fresh process: one backend per process)."""
    done = subprocess.run([sys.executable, "-c", PROBE, backend], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return {"cudnn_ran": False, "probe_error": done.stderr[-600:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="no GPU: the same steps on a tiny budget")
    parser.add_argument("--backends", nargs="*", default=["torch", "jax"])
    parser.add_argument("--out", help="also write the JSON line to this file")
    parser.add_argument("--timeout", type=float, default=200.0, help="seconds per backend's sweep")
    args = parser.parse_args()
    began = time.perf_counter()
    rows, tokens, vocabulary = (240, 30, 500) if args.cpu else (25_000, 250, 20_000)
    units = "[4,8]" if args.cpu else "[64,128,192,256]"
    epochs = 2 if args.cpu else 3
    resources = ["resources.cpus_per_trial=1", "resources.max_concurrent=2"] if args.cpu else [
        "resources.gpus_per_trial=0.25", "resources.cpus_per_trial=2"]
    settings = [
        "data.kind=text", f"data.num_words={vocabulary}", f"data.max_length={tokens}", "search.stage1.layers=[1]",
        f"search.stage1.units={units}", f"search.stage1.epochs={epochs}", "search.stage1.learning_rate=0.002",
        "search.stage2.max_iterations=2", f"search.stage2.epochs={epochs}", "model.batch_size=128", *resources,
    ]
    result: dict = {"check": "gpu", "cpu": args.cpu, "date": time.strftime("%Y-%m-%d"),
                    "task": {"reviews": rows, "tokens": tokens, "vocabulary": vocabulary}, "backends": {}}
    with tempfile.TemporaryDirectory(prefix="hindsight-gpu-check-") as folder:
        storage = Path(folder)
        tick = time.perf_counter()
        reviews(storage / "reviews.csv", rows, tokens, vocabulary)
        result["data_s"] = round(time.perf_counter() - tick, 1)
        settings.append(f"data.source={storage / 'reviews.csv'}")
        for backend in args.backends:
            entry = probe(backend)
            entry.update(sweep(backend, storage, settings, args.timeout, slots=2 if args.cpu else 4))
            result["backends"][backend] = entry
            print(f"{backend}: {json.dumps(entry)[:400]}", file=sys.stderr, flush=True)
    result["total_s"] = round(time.perf_counter() - began, 1)
    line = json.dumps(result)
    if args.out:
        Path(args.out).write_text(line + "\n")
    print(line)
    sys.exit(0 if all("error" not in e for e in result["backends"].values()) else 1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
