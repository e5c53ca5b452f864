"""``TwoStageSearch``: a thin Ray Tune ``Searcher`` over :class:`TwoStagePolicy`."""

from __future__ import annotations

import json
import math
import os
from typing import Any

from ray.tune.search import Searcher

from hindsight_ray.search.policy import FINISHED, WAIT, TwoStagePolicy

_NEEDS_METRIC = "TwoStageSearch needs metric and mode, from its arguments or from TuneConfig"


class TwoStageSearch(Searcher):
    """Stage 1: the layers x units grid in parallel; stage 2: the winner's learning rate, sequentially.

    Suggestions are configs with ``layers``, ``units``, ``learning_rate``, ``epochs`` and ``stage``;
    the trainable reports ``metric`` (and optionally ``params``, the model's parameter count, used
    to break stage-1 ties). Wrap it in ``ConcurrencyLimiter`` (or set
    ``TuneConfig(max_concurrent_trials=N)``) so that Tune keeps several stage-1 trials pending.
    """

    def __init__(
        self,
        layers: list[int],
        units: list[int],
        stage1_learning_rate: float = 0.001,
        stage1_epochs: int = 20,
        max_learning_rate: float = 0.02,
        max_iterations: int = 16,
        stage2_epochs: int = 50,
        metric: str | None = None,
        mode: str | None = None,
        speculative: bool = False,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        if speculative:
            raise ValueError("speculative stage 2 is not available in this version")
        self._settings = {
            "layers": list(layers),
            "units": list(units),
            "stage1_learning_rate": stage1_learning_rate,
            "stage1_epochs": stage1_epochs,
            "max_learning_rate": max_learning_rate,
            "max_iterations": max_iterations,
            "stage2_epochs": stage2_epochs,
        }
        self._policy: TwoStagePolicy | None = None
        self._last_results: dict[str, dict[str, Any]] = {}
        if mode is not None:
            self._policy = TwoStagePolicy(**self._settings, mode=mode)

    @property
    def policy(self) -> TwoStagePolicy:
        """The decisions so far (stage-1 scores, winner, learning-rate path)."""
        if self._policy is None:
            raise RuntimeError(_NEEDS_METRIC)
        return self._policy

    @property
    def total_trials(self) -> int:
        """Trials the full search runs: grid size plus K."""
        return TwoStagePolicy(**self._settings, mode=self._mode or "min").total_trials

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        if self._metric is None and metric:
            self._metric = metric
        if self._mode is None and mode:
            self._mode = mode
        if self._policy is None and self._mode is not None:
            self._policy = TwoStagePolicy(**self._settings, mode=self._mode)
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self._metric is None or self._mode is None:
            raise RuntimeError(_NEEDS_METRIC)
        decision = self.policy.suggest(trial_id)
        if decision == FINISHED:
            return Searcher.FINISHED
        if decision == WAIT:
            return None
        return decision.as_config()

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._last_results[trial_id] = result

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        last = result or self._last_results.pop(trial_id, None) or {}
        self._last_results.pop(trial_id, None)
        score = None if error else last.get(self._metric)
        if score is not None and not math.isfinite(float(score)):
            score = None
        self.policy.complete(trial_id, score=score, params=last.get("params"))

    # -- persistence: plain JSON, never a pickle of __dict__ -----------------------------
    def get_state(self) -> dict[str, Any]:
        return {
            "metric": self._metric,
            "mode": self._mode,
            "settings": self._settings,
            "policy": None if self._policy is None else self._policy.get_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._metric = state["metric"]
        self._mode = state["mode"]
        self._settings = state["settings"]
        self._policy = None if state["policy"] is None else TwoStagePolicy.from_state(state["policy"])

    def save(self, checkpoint_path: str) -> None:
        tmp = f"{checkpoint_path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.get_state(), handle, indent=1)
        os.replace(tmp, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, encoding="utf-8") as handle:
            self.set_state(json.load(handle))
