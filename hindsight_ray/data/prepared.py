"""``Prepared``: the arrays a trial trains on, plus what is needed to read its scores in real units."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hindsight_ray.metrics import classification_scores, regression_scores


@dataclass(frozen=True)
class TargetScaler:
    """Per-target ``value = scaled * scale + offset``, fitted on the training split only."""

    offset: np.ndarray
    scale: np.ndarray

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        """Scaled outputs shaped ``[samples, horizon * targets]`` back to the data's units."""
        targets = self.offset.shape[0]
        shaped = np.asarray(scaled, dtype=np.float64).reshape(len(scaled), -1, targets)
        return (shaped * self.scale + self.offset).reshape(len(scaled), -1)


@dataclass(frozen=True)
class Prepared:
    """Train/validation/test arrays prepared once on the driver and shared through the object store."""

    kind: str  # timeseries | text
    task: str  # regression | classification
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    output_dim: int
    num_words: int | None = None  # text: vocabulary size, the Embedding's input_dim
    scaler: TargetScaler | None = None  # regression: maps outputs back to the data's units
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)  # test-split scores
    info: dict[str, Any] = field(default_factory=dict)

    def scores(self, actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
        """Scores of model outputs against targets, in the data's own units."""
        if self.task == "classification":
            return classification_scores(actual, predicted)
        if self.scaler is not None:
            actual, predicted = self.scaler.inverse(actual), self.scaler.inverse(predicted)
        return regression_scores(actual, predicted)

    @property
    def nbytes(self) -> int:
        arrays = (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test)
        return int(sum(a.nbytes for a in arrays))
