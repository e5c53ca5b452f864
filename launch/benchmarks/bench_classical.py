"""Classical forecasts on the bundled series, on exactly the tool's test windows: what each baseline
scores and costs, and the reference models the issue names (the airline model, an AR(9) on sunspots).

    python launch/benchmarks/bench_classical.py

Prints one line per dataset and model: test RMSE (one step ahead, in data units) and fit seconds.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from hindsight_ray.config.schema import load_config
from hindsight_ray.data import prepare
from hindsight_ray.data.classical import classical_baselines


def ar9(history, actual: np.ndarray, fit_rows: int) -> float:
    """AR(9) with a mean, fitted on the first ``fit_rows`` rows, one step ahead over the test windows."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    y = history.values[:, 0].astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = SARIMAX(y[:fit_rows], order=(9, 0, 0), trend="c").fit(disp=False)
        predicted = np.asarray(fitted.apply(y).predict())[history.origins + 1]
    return float(np.sqrt(np.mean((predicted - actual[:, 0]) ** 2)))


def main() -> None:
    for dataset, overrides in (("airline", []), ("sunspots", ["data.source=builtin:sunspots", "data.lags=11"])):
        prepared = prepare(load_config(None, overrides).data)
        began = time.perf_counter()
        scores, _ = classical_baselines(prepared.history, prepared.actual["test"])
        total = time.perf_counter() - began
        for name, score in {**prepared.baselines, **scores}.items():
            detail = score.get("model") or ""
            shown = f"failed: {score['failed']}" if "failed" in score else f"test RMSE {score['rmse']:.2f}"
            fit = f", fit {score['fit_s']:.2f} s" if "fit_s" in score else ""
            print(f"{dataset:9s} {name:15s} {shown}{fit}  {detail}")
        print(f"{dataset:9s} classical baselines in {total:.2f} s (both models, every target)")
        if dataset == "sunspots":
            history = prepared.history
            print(f"{dataset:9s} AR(9) fitted on the training rows      test RMSE "
                  f"{ar9(history, prepared.actual['test'], history.train_rows):.2f}")
            print(f"{dataset:9s} AR(9) fitted on all rows before test   test RMSE "
                  f"{ar9(history, prepared.actual['test'], int(history.origins[0]) + 1):.2f}")


if __name__ == "__main__":
    main()
