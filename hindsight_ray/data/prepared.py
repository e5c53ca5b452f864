"""``Prepared``: the arrays a trial trains on, plus what is needed to read its scores in real units."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hindsight_ray.core.metrics import classification_scores, regression_scores


@dataclass(frozen=True)
class SeriesTransform:
    """How model outputs map back to the data's units: unscale, undo differencing, undo the log.

    Outputs are shaped ``[samples, horizon * targets]`` (target index fastest). ``base`` holds,
    per split, the last observed level (log level when ``log``; its seasonal difference with
    ``season``) of each target before a window's first target; differenced forecasts are accumulated
    from it. With ``season`` (seasonal differencing at that lag), ``seasons`` holds per split the
    last ``season`` observed levels ``[samples, season, targets]`` that each forecast adds back.
    """

    # per target, fitted on the training split only
    offset: np.ndarray
    scale: np.ndarray
    log: bool = False
    difference: bool = False
    # split -> [samples, targets]
    base: dict[str, np.ndarray] = field(default_factory=dict)
    # seasonal differencing lag (0: none)
    season: int = 0
    # split -> [samples, season, targets]
    seasons: dict[str, np.ndarray] = field(default_factory=dict)

    def inverse(self, split: str, outputs: np.ndarray) -> np.ndarray:
        targets = self.offset.shape[0]
        values = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1, targets)
        values = values * self.scale + self.offset
        if self.difference:
            values = self.base[split][:, None, :] + np.cumsum(values, axis=1)
        if self.season:
            # y[t+k] = w[t+k] + y[t+k-season], the level a season back observed or forecast
            # season x [samples, targets]
            known = list(np.moveaxis(self.seasons[split], 1, 0))
            for step in range(values.shape[1]):
                values[:, step] = values[:, step] + known[step]
                known.append(values[:, step])
        if self.log:
            values = np.exp(values)
        return values.reshape(len(outputs), -1)


def inverse_bases(
    levels: np.ndarray,
    first_targets: np.ndarray,
    target_index: list[int],
    difference: bool,
    season: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    """What :class:`SeriesTransform` adds back for windows whose first target is at ``first_targets``
    (rows of ``levels``, the log levels when ``log``): the last observed (seasonally differenced) level,
    and with ``season`` the last ``season`` levels ``[samples, season, targets]``."""
    last = first_targets - 1
    targets = levels[:, target_index]
    base = (
        targets[last] - (targets[last - season] if season else 0) if difference else targets[last]
    )
    if not season:
        return base, None
    return base, np.stack([targets[r - season + 1 : r + 1] for r in last]) if len(
        last
    ) else np.empty((0, season, len(target_index)))


@dataclass(frozen=True)
class SeriesHistory:
    """What the classical models need: the targets in data units, where training ends, and the test
    windows' origins (the row each window last observes) and horizon."""

    # [rows, targets], data units
    values: np.ndarray
    targets: list[str]
    # rows 0..train_rows-1 hold every training window's targets
    train_rows: int
    # per test window, the last observed row
    origins: np.ndarray
    horizon: int
    season: int | None
    # persistence, seasonal naive: test forecasts
    naive: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Prepared:
    """Train/validation/test arrays prepared once on the driver and shared through the object store."""

    # timeseries | text
    kind: str
    # regression | classification
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    output_dim: int
    # text: vocabulary size, the Embedding's input_dim
    num_words: int | None = None
    # regression: maps outputs back to the data's units
    transform: SeriesTransform | None = None
    # regression: split -> targets in data units
    actual: dict[str, np.ndarray] = field(default_factory=dict)
    # test-split scores
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    # JSON: what the predictor needs (fitted on train)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    # series: split -> each window's last observed row
    origins: dict[str, np.ndarray] = field(default_factory=dict)
    # series: what the classical baselines are fitted and run on
    history: SeriesHistory | None = None

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, model targets) of ``train``, ``val`` or ``test``."""
        return {
            "train": (self.x_train, self.y_train),
            "val": (self.x_val, self.y_val),
            "test": (self.x_test, self.y_test),
        }[name]

    def in_data_units(self, split: str, outputs: np.ndarray) -> np.ndarray:
        """Model outputs for a split as forecasts in the data's own units."""
        if self.transform is None:
            return np.asarray(outputs, dtype=np.float64)
        return self.transform.inverse(split, outputs)

    def scores(self, split: str, outputs: np.ndarray) -> dict[str, float]:
        """Scores of model outputs on ``val`` or ``test``, in the data's own units."""
        if self.task == "classification":
            return classification_scores(self.split(split)[1], outputs)
        actual = self.actual.get(split)
        if actual is None:
            actual = self.in_data_units(split, self.split(split)[1])
        return regression_scores(actual, self.in_data_units(split, outputs))

    @property
    def nbytes(self) -> int:
        arrays = (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test)
        return int(sum(a.nbytes for a in arrays))
