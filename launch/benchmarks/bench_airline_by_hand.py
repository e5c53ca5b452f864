"""The airline series as a forecaster would try it by hand, on the tool's exact split: log, seasonal
difference (12) and first difference, standard scaling on the training rows, then a Keras model per
seed, chosen by its best validation epoch and scored once on the 29 test months (one step ahead,
passengers). What the README's "Classical baselines" section quotes for lags, widths, a linear model
and a refit on train + validation.

    python launch/benchmarks/bench_airline_by_hand.py LAGS UNITS LAYERS LEARNING_RATE EPOCHS [refit]

UNITS 0 / LAYERS 0: a linear model (Flatten + Dense) on the same inputs. ``refit``: train again on
train + validation for the chosen epoch count before the test.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hindsight_ray.data import BUILTINS, builtin_path  # noqa: E402

SEASON, TRAIN_ROWS, VALIDATION_ROWS = 12, 86, 29  # the tool's split of the 144 months: 86 / 29 / 29


def main(lags: int, units: int, layers: int, learning_rate: float, epochs: int, refit: bool) -> None:
    y = np.log(pd.read_csv(builtin_path(BUILTINS["airline"])).passengers.to_numpy(float))
    z = np.diff(y[SEASON:] - y[:-SEASON])  # z[j] belongs to month j + SEASON + 1
    months = np.arange(len(z)) + SEASON + 1
    mean, sd = z[months < TRAIN_ROWS].mean(), z[months < TRAIN_ROWS].std()
    scaled = (z - mean) / sd
    x = np.stack([scaled[j - lags : j] for j in range(lags, len(z))])[..., None]
    target, month = scaled[lags:], months[lags:]
    train, val = month < TRAIN_ROWS, (month >= TRAIN_ROWS) & (month < TRAIN_ROWS + VALIDATION_ROWS)
    test = month >= TRAIN_ROWS + VALIDATION_ROWS

    def passengers(outputs: np.ndarray, t: np.ndarray) -> np.ndarray:  # y_t = z_t + y_{t-1} + y_{t-12} - y_{t-13}
        return np.exp(outputs * sd + mean + y[t - 1] + y[t - SEASON] - y[t - SEASON - 1])

    def rmse(rows: np.ndarray, outputs: np.ndarray) -> float:
        return float(np.sqrt(np.mean((passengers(outputs, month[rows]) - np.exp(y[month[rows]])) ** 2)))

    def build(seed: int) -> keras.Model:
        keras.utils.set_random_seed(seed)
        body = [keras.layers.Flatten()] if layers == 0 else [
            keras.layers.LSTM(units, return_sequences=i < layers - 1) for i in range(layers)]
        model = keras.Sequential([keras.Input((lags, 1)), *body, keras.layers.Dense(1)])
        model.compile(keras.optimizers.RMSprop(learning_rate), "mse")
        return model

    results = []
    for seed in range(3):
        model, best, best_epoch, weights = build(seed), np.inf, 0, None
        for epoch in range(1, epochs + 1):
            model.fit(x[train], target[train], batch_size=32, epochs=1, verbose=0)
            score = rmse(val, model.predict(x[val], verbose=0)[:, 0])
            if score < best:
                best, best_epoch, weights = score, epoch, model.get_weights()
        model.set_weights(weights)
        if refit:
            model = build(seed)
            model.fit(x[train | val], target[train | val], batch_size=32, epochs=best_epoch, verbose=0)
        results.append((best, rmse(test, model.predict(x[test], verbose=0)[:, 0])))
    print(f"lags={lags} units={units} layers={layers} lr={learning_rate:g} epochs={epochs}"
          f"{' refit on train+validation' if refit else ''}: seeds 0-2 val " + ", ".join(f"{v:.2f}" for v, _ in results)
          + " test " + ", ".join(f"{t:.2f}" for _, t in results))


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]), int(args[1]), int(args[2]), float(args[3]), int(args[4]), refit=args[5:] == ["refit"])
