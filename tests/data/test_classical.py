"""Classical baselines: fitted on the training rows, run over exactly the LSTM's test windows (statsmodels,
no Ray, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from hindsight_ray.config.schema import load_config
from hindsight_ray.data import prepare
from hindsight_ray.data.classical import classical_baselines
from hindsight_ray.data.prepared import SeriesHistory


@pytest.fixture(autouse=True)
def nothing_fitted_yet():
    """Each test fits its own series (the process keeps the last few fits: one test's stays out of another's)."""
    from hindsight_ray.data import classical

    classical._FITTED.clear()


def test_the_airline_model_is_chosen_and_scores_what_statsmodels_gives_on_the_same_test_months():
    prepared = prepare(load_config(None, []).data)
    history = prepared.history
    assert history.train_rows == 86 and len(history.origins) == 29 and history.season == 12
    scores, forecasts = classical_baselines(history, prepared.actual["test"])
    assert scores["sarima"]["model"] == "SARIMA(0,1,1)(0,1,1)12 on log"
    # statsmodels by hand: the airline model on log passengers, fitted on the first 86 months, one step ahead
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    y = np.log(history.values[:, 0])
    fitted = SARIMAX(y[:86], order=(0, 1, 1), seasonal_order=(0, 1, 1, 12)).fit(disp=False)
    by_hand = np.exp(fitted.apply(y).predict())[history.origins + 1]
    np.testing.assert_allclose(forecasts["sarima"][:, 0], by_hand, rtol=1e-6)
    assert scores["sarima"]["rmse"] == pytest.approx(15.69, abs=0.05)
    assert scores["sarima"]["rmse"] < prepared.baselines["seasonal_naive"]["rmse"]  # 46.08
    assert scores["ets"]["model"].startswith("Holt-Winters") and 0 < scores["ets"]["rmse"] < 46
    assert scores["sarima"]["fit_s"] >= 0 and forecasts["sarima"].shape == (29, 1)


def test_forecasts_never_see_the_value_they_forecast():
    """A spike in the last test month moves no forecast before it: each window is forecast from earlier rows."""
    prepared = prepare(load_config(None, []).data)
    history = prepared.history
    _, before = classical_baselines(history, prepared.actual["test"])
    values = history.values.copy()
    values[-1] *= 3
    spiked = SeriesHistory(values, history.targets, history.train_rows, history.origins, 1, history.season)
    _, after = classical_baselines(spiked, prepared.actual["test"])
    for name in ("sarima", "ets"):
        np.testing.assert_allclose(after[name], before[name], rtol=1e-9)


def test_a_multi_step_horizon_and_two_targets_get_one_model_per_target():
    rng = np.random.default_rng(0)
    t = np.arange(120)
    values = np.stack([50 + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, 120), rng.normal(0, 1, 120).cumsum()], 1)
    history = SeriesHistory(values, ["a", "b"], 80, np.arange(90, 117), horizon=3, season=12)
    actual = np.stack([values[o + 1 : o + 4].reshape(-1) for o in history.origins])
    scores, forecasts = classical_baselines(history, actual)
    assert forecasts["sarima"].shape == (27, 6)  # 3 steps x 2 targets, target fastest (as the LSTM's outputs)
    assert scores["sarima"]["model"].startswith("a: SARIMA(") and "; b: " in scores["sarima"]["model"]
    assert "on log" in scores["sarima"]["model"].split(";")[0] and "on log" not in scores["sarima"]["model"].split(";")[1]
    assert scores["sarima"]["rmse"] < 3


def test_a_model_that_cannot_fit_is_recorded_as_failed_not_raised(monkeypatch):
    import hindsight_ray.data.classical as classical

    def singular(*args):
        raise np.linalg.LinAlgError("Schur decomposition solver error.")

    monkeypatch.setattr(classical, "_sarima", singular)
    values = np.linspace(10, 20, 60)[:, None]
    history = SeriesHistory(values, ["y"], 40, np.arange(40, 59), horizon=1, season=None)
    scores, forecasts = classical_baselines(history, values[41:60])
    assert scores["sarima"]["failed"] == "LinAlgError: Schur decomposition solver error." and "sarima" not in forecasts
    assert "rmse" in scores["ets"] and forecasts["ets"].shape == (19, 1)  # the other one still stands


def test_fitting_prints_no_warnings(recwarn):
    values = np.full((30, 1), 5.0)  # a flat series: statsmodels warns that its optimizer did not converge
    classical_baselines(SeriesHistory(values, ["y"], 20, np.arange(20, 29), 1, None), np.full((9, 1), 5.0))
    assert not [w for w in recwarn if "statsmodels" in w.filename]


def test_the_same_series_and_windows_are_fitted_once_per_process(monkeypatch):
    """A campaign's cells share a dataset's test windows: the second cell gets the first one's fit, as a
    copy of its own; another series, split or target is fitted anew."""
    from hindsight_ray.data import classical

    fits = []
    real = classical._per_target
    monkeypatch.setattr(classical, "_per_target", lambda history, fit: fits.append(fit) or real(history, fit))
    values = np.sin(np.arange(60.0) / 3)[:, None] + 5
    history = SeriesHistory(values, ["y"], 40, np.arange(40, 59), 1, None)
    first, first_forecasts = classical_baselines(history, values[41:60])
    assert len(fits) == 2  # sarima, ets
    first["sarima"]["rmse"] = -1.0
    first_forecasts["sarima"][:] = 0
    again, again_forecasts = classical_baselines(history, values[41:60])
    assert len(fits) == 2 and again["sarima"]["rmse"] > 0 and again_forecasts["sarima"].any()
    classical_baselines(SeriesHistory(values, ["y"], 30, np.arange(40, 59), 1, None), values[41:60])
    classical_baselines(SeriesHistory(values * 2, ["y"], 40, np.arange(40, 59), 1, None), values[41:60] * 2)
    assert len(fits) == 6
