"""Classical forecasts beside every time-series result: a seasonal ARIMA and exponential smoothing (statsmodels).

Each is fitted once on the rows the LSTM trains on, then run over the whole series with those parameters
fixed (statsmodels' ``results.apply``), so that every test window is forecast from the values observed
before it, exactly as the LSTM's test windows are: the same origins, the same horizon, in data units.
A positive target is modelled on its log (the forecast is the exponential of the log forecast). A model
that fails to fit is recorded as failed with its reason; it never stops a sweep.
"""

from __future__ import annotations

import copy
import hashlib
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hindsight_ray.core.metrics import regression_scores
from hindsight_ray.data.prepared import SeriesHistory

# SARIMA candidates, chosen by AIC on the training rows. With a season: the airline model and its
# neighbours (one seasonal difference, one regular difference); without: AR orders up to one solar cycle
# (sunspots) with a mean, and a few ARIMA(p,1,q) for series that wander.
SEASONAL_ORDERS = [
    ((0, 1, 1), (0, 1, 1)),
    ((1, 1, 0), (0, 1, 1)),
    ((1, 1, 1), (0, 1, 1)),
    ((0, 1, 1), (1, 1, 0)),
]
PLAIN_ORDERS = [
    (1, 0, 0),
    (2, 0, 0),
    (3, 0, 0),
    (6, 0, 0),
    (9, 0, 0),
    (2, 0, 1),
    (0, 1, 1),
    (1, 1, 1),
    (2, 1, 2),
]


@dataclass
class Fitted:
    """One classical model's test forecasts ``[windows, horizon * targets]`` and what it was."""

    forecasts: np.ndarray
    description: str


# the last few series' results in this process, by what they were computed from: a campaign's cells (every
# strategy and seed of one dataset) share their test windows, and fitting takes about a second each time
_FITTED: OrderedDict[str, tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]] = OrderedDict()
_KEPT = 8


def _key(history: SeriesHistory, actual: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in (history.values, history.origins, actual):
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{contiguous.dtype}{contiguous.shape}".encode())
        digest.update(contiguous.tobytes())
    digest.update(
        repr((history.targets, history.train_rows, history.horizon, history.season)).encode()
    )
    return digest.hexdigest()


def classical_baselines(
    history: SeriesHistory, actual: np.ndarray
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Test scores of each classical model (``rmse``, ``mae``, ``model``, ``fit_s``; or ``failed``), and
    their forecasts by name. Fitted once per series, windows and targets in this process (``fit_s`` is that
    fit's); each call gets its own copy."""
    key = _key(history, actual)
    if key not in _FITTED:
        _FITTED[key] = _fit_all(history, actual)
        while len(_FITTED) > _KEPT:
            _FITTED.popitem(last=False)
    _FITTED.move_to_end(key)
    return copy.deepcopy(_FITTED[key])


def _fit_all(
    history: SeriesHistory, actual: np.ndarray
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    scores: dict[str, dict[str, Any]] = {}
    forecasts: dict[str, np.ndarray] = {}
    for name, fit in (("sarima", _sarima), ("ets", _ets)):
        began = time.perf_counter()
        try:
            fitted = _per_target(history, fit)
        except Exception as exc:  # noqa: BLE001 - a baseline that fails is recorded, never fatal
            text = str(exc).strip().splitlines()
            reason = f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__
            scores[name] = {"failed": reason, "fit_s": round(time.perf_counter() - began, 3)}
            continue
        if not np.isfinite(fitted.forecasts).all():
            scores[name] = {
                "failed": "non-finite forecasts",
                "fit_s": round(time.perf_counter() - began, 3),
            }
            continue
        scores[name] = {
            **regression_scores(actual, fitted.forecasts),
            "model": fitted.description,
            "fit_s": round(time.perf_counter() - began, 3),
        }
        forecasts[name] = fitted.forecasts
    return scores, forecasts


def _per_target(
    history: SeriesHistory, fit: Callable[[np.ndarray, int, int | None], tuple[Any, str]]
) -> Fitted:
    """One model per target, its forecasts interleaved as the LSTM's outputs are (target index fastest)."""
    # imported before the warnings are silenced: statsmodels sets its own "always" filter on import
    import statsmodels.tsa.statespace.exponential_smoothing
    import statsmodels.tsa.statespace.sarimax  # noqa: F401

    per_target, descriptions = [], []
    for index, target in enumerate(history.targets):
        series = history.values[:, index].astype(np.float64)
        log = bool((series > 0).all())
        y = np.log(series) if log else series
        with warnings.catch_warnings():
            # convergence chatter; a model that cannot fit raises
            warnings.simplefilter("ignore")
            results, description = fit(y[: history.train_rows], history.train_rows, history.season)
            forecast = _forecast_windows(results, y, history.origins, history.horizon)
        per_target.append(np.exp(forecast) if log else forecast)
        label = f"{description}{' on log' if log else ''}"
        descriptions.append(label if len(history.targets) == 1 else f"{target}: {label}")
    # [windows, horizon, targets]
    stacked = np.stack(per_target, axis=2)
    return Fitted(stacked.reshape(len(history.origins), -1), "; ".join(descriptions))


def _forecast_windows(results: Any, y: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Forecasts ``[windows, horizon]`` from each origin, with the fitted parameters fixed."""
    if horizon == 1:
        # one-step predictions over the whole series: each uses the values before it
        applied = results.apply(y)
        predicted = np.asarray(applied.predict(start=0, end=len(y) - 1))
        return predicted[origins + 1][:, None]
    rows = []
    for origin in origins:
        applied = results.apply(y[: origin + 1])
        rows.append(np.asarray(applied.forecast(horizon)))
    return np.stack(rows)


def _sarima(train: np.ndarray, rows: int, season: int | None) -> tuple[Any, str]:
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    candidates: list[tuple[tuple[int, int, int], tuple[int, int, int, int]]]
    if season and rows >= 3 * season:
        candidates = [(order, (*seasonal, season)) for order, seasonal in SEASONAL_ORDERS]
    else:
        candidates = [
            (order, (0, 0, 0, 0)) for order in PLAIN_ORDERS if rows > 4 * (order[0] + order[2] + 2)
        ]
    best, best_aic, best_name = None, np.inf, ""
    for order, seasonal in candidates:
        trend = "c" if order[1] == 0 and seasonal[1] == 0 else None
        model = SARIMAX(train, order=order, seasonal_order=seasonal, trend=trend)
        try:
            results = model.fit(disp=False)
        except (np.linalg.LinAlgError, ValueError):
            continue
        # one AIC ranking across every candidate, a small auto-ARIMA: statsmodels keeps the levels in the
        # state space (differencing inside it), so models of different differencing are compared on
        # nearly the same data (the diffuse first observations aside), not exactly
        if np.isfinite(results.aic) and results.aic < best_aic:
            best, best_aic = results, results.aic
            best_name = f"SARIMA{order}" + (f"{seasonal[:3]}{seasonal[3]}" if seasonal[3] else "")
    if best is None:
        raise ValueError("no SARIMA candidate could be fitted")
    return best, best_name.replace(" ", "")


def _ets(train: np.ndarray, rows: int, season: int | None) -> tuple[Any, str]:
    from statsmodels.tsa.statespace.exponential_smoothing import ExponentialSmoothing

    seasonal = season if season and rows >= 2 * season + 2 else None
    model = ExponentialSmoothing(
        train, trend=True, damped_trend=seasonal is None, seasonal=seasonal
    )
    results = model.fit(disp=False)
    kind = (
        f"Holt-Winters (additive trend and season {seasonal})"
        if seasonal
        else "ETS (damped trend, no season)"
    )
    return results, kind
