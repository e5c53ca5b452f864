"""Which score is better, and how a trial's score is taken from its epochs (``search.score``).

Everything that ranks trials (the stage-1 winner, the stage-2 rule, the final choice, early
stopping, the other strategies, campaigns, the console and the report) goes through this module,
so "better" and "a trial's score" mean one thing everywhere.

- ``best_epoch`` (default): the best validation value over the trial's epochs, ties to the earlier
  epoch; that epoch's weights are the trial's model (as KerasTuner and Keras'
  ``EarlyStopping(restore_best_weights=True)`` do).
- ``last_epoch``: the value after the last epoch (the seed notebook's rule); the last weights.
- ``mean_last``: the mean of the last ``last_k`` values; the last weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

ScoreRule = Literal["best_epoch", "last_epoch", "mean_last"]
SCORE_RULES: tuple[ScoreRule, ...] = ("best_epoch", "last_epoch", "mean_last")

# The key every trial reports each epoch: its score so far by the rule. Tune ranks on it.
SCORE_KEY = "score"
# The epoch whose weights the trial's model is (the best epoch, or the last one).
SCORE_EPOCH_KEY = "score_epoch"


def finite(value: float | None) -> float | None:
    """The value as a float when it is a real number; None for None, NaN and infinities (a failed or
    diverged result is not a score)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def is_better(score: float | None, other: float | None, mode: str) -> bool:
    """True when ``score`` strictly beats ``other``; a missing or non-finite score is the worst."""
    if score is None or not math.isfinite(score):
        return False
    if other is None or not math.isfinite(other):
        return True
    return score < other if mode == "min" else score > other


@dataclass(frozen=True)
class TrialScore:
    """A trial's score, the epoch its model comes from, and the epoch of its best value (1-based)."""

    value: float | None
    epoch: int | None
    best_epoch: int | None


@dataclass(frozen=True)
class Objective:
    """The validation metric, its direction, and the rule that turns an epoch curve into one score."""

    metric: str
    mode: str
    rule: ScoreRule = "best_epoch"
    last_k: int = 3

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")
        if self.rule not in SCORE_RULES:
            raise ValueError(
                f"search.score must be one of {', '.join(SCORE_RULES)}, got {self.rule!r}"
            )
        if self.last_k < 1:
            raise ValueError(f"search.score_last_k must be at least 1, got {self.last_k}")

    @property
    def test_key(self) -> str:
        """The test-split name of the metric: ``val_rmse`` -> ``test_rmse``."""
        return "test_" + self.metric.removeprefix("val_")

    @property
    def last_key(self) -> str:
        """The column holding the metric after the last epoch: ``last_val_rmse``."""
        return f"last_{self.metric}"

    def better(self, score: float | None, other: float | None) -> bool:
        return is_better(score, other, self.mode)

    def best_index(self, scores: Sequence[float | None]) -> int | None:
        """The position of the best score (ties: the earliest), or None when none is finite."""
        best: int | None = None
        for index, score in enumerate(scores):
            if self.better(score, None if best is None else scores[best]):
                best = index
        return best

    def trial_score(self, curve: Sequence[float | None]) -> TrialScore:
        """The score of a trial whose validation values, epoch by epoch, are ``curve``."""
        if not curve:
            return TrialScore(None, None, None)
        best = self.best_index(curve)
        best_epoch = None if best is None else best + 1
        if self.rule == "best_epoch":
            return TrialScore(None if best is None else finite(curve[best]), best_epoch, best_epoch)
        last = len(curve)
        if self.rule == "last_epoch":
            return TrialScore(finite(curve[-1]), last, best_epoch)
        window = [finite(v) for v in curve[-self.last_k :]]
        values = [v for v in window if v is not None]
        if len(values) < len(window):
            # a diverged epoch among the last K: no score
            return TrialScore(None, last, best_epoch)
        return TrialScore(math.fsum(values) / len(values), last, best_epoch)


def baseline_verdict(summary: Mapping[str, Any], objective: Objective) -> str | None:
    """How a finished sweep's chosen model stands against its best baseline on test, in words; None when
    there is no test score or no baseline scored on the same metric."""
    best = summary.get("best") or {}
    test = best.get(objective.test_key)
    key = objective.test_key.removeprefix("test_")
    scored = {
        name: float(b[key])
        for name, b in (summary.get("baselines") or {}).items()
        if finite(b.get(key)) is not None
    }
    if test is None or finite(test) is None or not scored:
        return None
    name = (
        min(scored, key=lambda n: scored[n])
        if objective.mode == "min"
        else max(scored, key=lambda n: scored[n])
    )
    value = scored[name]
    model = (summary.get("baselines") or {})[name].get("model")
    label = f"{name.replace('_', ' ')}{f' ({model})' if model else ''}"
    if is_better(value, test, objective.mode):
        gap = abs(test - value) / abs(value) * 100 if value else float("inf")
        return (
            f"WORSE than the best baseline, {label}: test {key} {test:.4g} against {value:.4g} "
            f"({gap:.0f}% {'higher' if objective.mode == 'min' else 'lower'})"
        )
    return f"better than every baseline (the best, {label}: test {key} {value:.4g})"
