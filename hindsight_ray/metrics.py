"""Scores in the data's own units, shared by the trainable, the final evaluation and the baselines."""

from __future__ import annotations

import numpy as np


def regression_scores(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE and MAE over every output, in whatever units the arrays are in."""
    error = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}


def classification_scores(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy of 0/1 labels against predicted probabilities of class 1."""
    predicted = (np.asarray(probabilities).reshape(-1) >= 0.5).astype(np.int64)
    return {"accuracy": float(np.mean(predicted == np.asarray(labels).reshape(-1)))}
