"""Would averaging the best k trials' models beat the chosen one? For a finished series sweep: the
validation and test RMSE of the mean of the top-k trials' outputs (by validation), k = 1, 2, 3, 4, 5, 8.

    python launch/benchmarks/bench_ensemble.py EXPERIMENT_DIR
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd

from hindsight_ray.training.backend import use_trial_numerics


def main(experiment: str) -> None:
    use_trial_numerics()
    from hindsight_ray.config.schema import build_config
    from hindsight_ray.data import prepare
    from hindsight_ray.training.checkpoints import load_scored_model
    from hindsight_ray.training.trainable import predict

    raw = json.load(open(f"{experiment}/config.json"))
    keys = ("name", "storage", "seed", "data", "model", "search", "resources", "run")
    prepared = prepare(build_config({k: v for k, v in raw.items() if k in keys}).data)
    trials = pd.read_parquet(f"{experiment}/trials.parquet").dropna(subset=["val_rmse"]).sort_values("val_rmse")
    outputs = []
    for path in trials.checkpoint_path.head(8):
        model = load_scored_model(path)
        outputs.append((predict(model, prepared.x_val), predict(model, prepared.x_test)))
    for k in (1, 2, 3, 4, 5, 8):
        val = prepared.scores("val", np.mean([o[0] for o in outputs[:k]], axis=0))["rmse"]
        test = prepared.scores("test", np.mean([o[1] for o in outputs[:k]], axis=0))["rmse"]
        print(f"top {k}: val RMSE {val:.3f}, test RMSE {test:.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
