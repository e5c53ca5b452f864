# The README's Python API example, as a script:  python launch/examples/python_api.py
import numpy as np
import pandas as pd

import hindsight_ray as hr

# Any table with a date column and a numeric target: here, daily visits with a weekly cycle.
days = pd.date_range("2024-01-01", periods=400, freq="D")
visits = 100 + 20 * np.sin(np.arange(400) * 2 * np.pi / 7) + np.random.default_rng(0).normal(0, 3, 400)
frame = pd.DataFrame({"day": days, "visits": visits})

result = hr.sweep(
    data=frame,  # a DataFrame, or leave it out and set data.source in the config
    overrides=["data.target=visits", "data.date_column=day", "data.lags=14",
               "search.stage1.layers=[1]", "search.stage1.units=[8,16]", "search.stage1.epochs=5",
               "search.stage2.max_iterations=3", "search.stage2.epochs=5"],
    storage="hindsight_results",
    report=False,
)
print(result.best)  # layers, units, learning rate, the epoch its model comes from, validation and test RMSE
print(result.trials[["stage", "layers", "units", "learning_rate", "val_rmse", "best_epoch"]])

forecaster = hr.load(result.experiment_dir).predictor()  # later, in another process: the same
print(forecaster.predict(frame.tail(30)).tail(3))  # visits for the next day; the last row is past the data
