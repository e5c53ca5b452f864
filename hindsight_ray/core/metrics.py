"""Scores in the data's own units, shared by the trainable, the final evaluation and the baselines."""

from __future__ import annotations

import numpy as np


def regression_scores(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE and MAE over every output, in whatever units the arrays are in."""
    error = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}


def predicted_classes(probabilities: np.ndarray) -> np.ndarray:
    """Class ids from model outputs: P(class 1) >= 0.5 for one column, the most probable class for several."""
    probabilities = np.asarray(probabilities)
    if probabilities.ndim == 2 and probabilities.shape[1] > 1:
        return probabilities.argmax(axis=1).astype(np.int64)
    return (probabilities.reshape(-1) >= 0.5).astype(np.int64)


def classification_scores(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy of class ids against predicted probabilities (of class 1, or of every class)."""
    predicted = predicted_classes(probabilities)
    return {"accuracy": float(np.mean(predicted == np.asarray(labels).reshape(-1)))}
