"""``TwoStageSearch``: a thin Ray Tune ``Searcher`` over :class:`TwoStagePolicy`."""

from __future__ import annotations

import json
import math
import os
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher

from hindsight_ray.core.trials import stopped_early
from hindsight_ray.search.policy import FINISHED, LIVE, WAIT, TwoStagePolicy, TwoStageSettings

_NEEDS_METRIC = "TwoStageSearch needs metric and mode, from its arguments or from TuneConfig"


class TwoStageSearch(Searcher):
    """Stage 1: the layers x units grid in parallel; stage 2: the winner's learning rate, sequentially.

    Suggestions are configs with ``layers``, ``units``, ``learning_rate``, ``epochs`` and ``stage``;
    the trainable reports ``metric`` (and optionally ``params``, the model's parameter count, used
    to break stage-1 ties). Set ``TuneConfig(max_concurrent_trials=N)`` (or wrap it in
    ``ConcurrencyLimiter``) so that Tune keeps N trials pending and starts stage 1 all at once;
    without it Tune keeps one pending and starts them one after another (they still overlap).

    With ``speculative=True``, free slots in stage 2 run the learning rates the next decisions could
    need; the decided path is the sequential one. Pass ``scheduler=search.scheduler()`` to Tune so that
    speculative trials on branches that turn out unused are stopped as soon as that is known.
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
        self._settings = TwoStageSettings(
            layers=tuple(layers),
            units=tuple(units),
            stage1_learning_rate=stage1_learning_rate,
            stage1_epochs=stage1_epochs,
            max_learning_rate=max_learning_rate,
            max_iterations=max_iterations,
            stage2_epochs=stage2_epochs,
            speculative=speculative,
        )
        self._policy: TwoStagePolicy | None = None
        self._last_results: dict[str, dict[str, Any]] = {}
        if mode is not None:
            self._policy = self._settings.policy(mode)

    @property
    def policy(self) -> TwoStagePolicy:
        """The decisions so far (stage-1 scores, winner, learning-rate path)."""
        if self._policy is None:
            raise RuntimeError(_NEEDS_METRIC)
        return self._policy

    @property
    def total_trials(self) -> int:
        """Trials the full search runs: grid size plus K."""
        return self._settings.policy(self._mode or "min").total_trials

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        if self._metric is None and metric:
            self._metric = metric
        if self._mode is None and mode:
            self._mode = mode
        if self._policy is None and self._mode is not None:
            self._policy = self._settings.policy(self._mode)
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self._metric is None or self._mode is None:
            raise RuntimeError(_NEEDS_METRIC)
        decision = self.policy.suggest(trial_id)
        if decision == FINISHED:
            return Searcher.FINISHED  # type: ignore[return-value]
        if decision == WAIT:
            return None
        return decision.as_config()

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._last_results[trial_id] = result

    def live_trial_ids(self) -> set[str]:
        """The trials suggested whose end has not been reported yet."""
        if self._policy is None:
            return set()
        return {t.trial_id for t in self._policy.trials.values() if t.status in LIVE}

    def stop_if_unneeded(self, trial_id: str) -> bool:
        """True when a speculative trial can no longer matter (it is then recorded as stopped)."""
        return self._policy is not None and self._policy.stop_if_unneeded(trial_id)

    def scheduler(self, stage1_early_stop: TrialScheduler | None = None) -> TwoStageScheduler:
        """A Tune scheduler for this search: stops unused speculative trials, and stage-1 trials that
        ``stage1_early_stop`` (e.g. ``ASHAScheduler(time_attr="epoch", max_t=stage1_epochs)``) gives up on."""
        return TwoStageScheduler(self, stage1_early_stop)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        last = result or self._last_results.pop(trial_id, None) or {}
        self._last_results.pop(trial_id, None)
        score = None if error or self._metric is None else last.get(self._metric)
        if score is not None and not math.isfinite(float(score)):
            score = None
        record = self.policy.trials.get(trial_id)
        # stopped by a scheduler before its last epoch: recorded, never a result
        stopped = not error and record is not None and stopped_early(last, record.epochs)
        self.policy.complete(trial_id, score=score, params=last.get("params"), stopped=stopped)

    # -- persistence: plain JSON, never a pickle of __dict__ -----------------------------
    def get_state(self) -> dict[str, Any]:
        return {
            "metric": self._metric,
            "mode": self._mode,
            "settings": self._settings.as_dict(),
            "policy": None if self._policy is None else self._policy.get_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._metric = state["metric"]
        self._mode = state["mode"]
        self._settings = TwoStageSettings.from_dict(state["settings"])
        self._policy = (
            None if state["policy"] is None else TwoStagePolicy.from_state(state["policy"])
        )

    def save(self, checkpoint_path: str) -> None:
        tmp = f"{checkpoint_path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            # compact: Tune saves this often
            handle.write(json.dumps(self.get_state(), separators=(",", ":")))
        os.replace(tmp, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, encoding="utf-8") as handle:
            self.set_state(json.load(handle))


class TwoStageLimiter(ConcurrencyLimiter):
    """Ray's ``ConcurrencyLimiter`` for a :class:`TwoStageSearch`, whose live trials agree with the search's.

    Ray's limiter keeps its own set of live trials, saved apart from the searcher's state, and passes on
    only the ends of trials in that set. After a resume from object storage the two files can come from
    different moments (they upload one after the other); a trial suggested in between then ends unheard,
    and the search waits for it at the stage-1 barrier for ever. Here every end reaches the search, and
    after a restore the live set is taken again from the search's state (which a resume rebuilds from
    Ray's own record of the trials); in between it is kept as Ray keeps it, at no cost per trial.
    """

    searcher: TwoStageSearch

    def __init__(self, searcher: TwoStageSearch, max_concurrent: int) -> None:
        super().__init__(searcher, max_concurrent=max_concurrent, batch=False)
        self._from_search = False

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        # the search's own state is restored after this one: read it at first use
        self._from_search = True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if getattr(self, "_from_search", False):
            self.live_trials = self.searcher.live_trial_ids()
            self._from_search = False
        return super().suggest(trial_id)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        # the search ignores strangers
        self.searcher.on_trial_complete(trial_id, result=result, error=error)
        self.live_trials.discard(trial_id)


class TwoStageScheduler(FIFOScheduler):
    """First-in-first-out scheduling for a two-stage search, plus two ways to stop a trial early:
    ASHA on stage-1 trials (optional), and unused speculative stage-2 trials as soon as they are known
    to be unused."""

    def __init__(
        self, searcher: TwoStageSearch, stage1_early_stop: TrialScheduler | None = None
    ) -> None:
        super().__init__()
        self._searcher = searcher
        self._asha = stage1_early_stop
        # (Tune's actor cache, resources) raised to keep workers warm
        self._kept: list[tuple[Any, Any]] = []
        # trial id -> when Tune added it (the order of its trial list)
        self._added: dict[str, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its scheduler with the Tuner (a resume adds its trials again)
        return {**self.__dict__, "_kept": [], "_added": {}}

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        """Ray's first-in-first-out choice (the first pending trial Tune added, else the first paused one),
        found among Tune's live trials (at most the slots and the trials waiting for one) rather than by
        scanning every trial of the sweep at each step of Tune's loop, as Ray's ``FIFOScheduler`` does:
        that scan grows with the sweep and took a sixth of the driver's time at 5,000 trials."""
        live = getattr(tune_controller, "get_live_trials", None)
        if live is None:
            return super().choose_trial_to_run(tune_controller)
        trials = list(live())
        for status in (Trial.PENDING, Trial.PAUSED):
            waiting = [trial for trial in trials if trial.status == status]
            if waiting:
                return min(waiting, key=lambda trial: self._added.get(trial.trial_id, -1))
        return None

    def _keep_worker(self, tune_controller: Any, trial: Any) -> None:
        """With speculation, keep an ended stage-1 trial's worker for stage 2.

        Tune caches only as many idle workers as it has trials waiting, and while stage 1 drains none
        wait (the barrier), so stage 2 would start with one warm worker and the speculative trials would
        queue behind worker start-ups (seconds each, a TensorFlow import). This raises the cache's limit
        by one per ended stage-1 trial until stage 2 runs. It uses Tune's private actor cache; if that is
        not there (another Ray), nothing changes but the speed.
        """
        if trial.config.get("stage") != 1 or not self._searcher.policy.settings.get("speculative"):
            return
        cache = getattr(tune_controller, "_actor_cache", None)
        resources = getattr(trial, "placement_group_factory", None)
        if cache is None or resources is None or not hasattr(cache, "increase_max"):
            return
        cache.increase_max(resources)
        self._kept.append((cache, resources))

    def _release_workers(self) -> None:
        """Stage 2 has its workers: give the cache its own limits back."""
        while self._kept:
            cache, resources = self._kept.pop()
            cache.decrease_max(resources)

    def _stage1(self, trial: Any) -> bool:
        return self._asha is not None and trial.config.get("stage") == 1

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if self._asha is not None:
            self._asha.set_search_properties(metric, mode, **spec)
        return super().set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._added.setdefault(trial.trial_id, len(self._added))
        if self._asha is not None and self._stage1(trial):
            self._asha.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if self._asha is not None and self._stage1(trial):
            return self._asha.on_trial_result(tune_controller, trial, result)
        if trial.config.get("stage") == 2:
            self._release_workers()
        # after a resume this is still the searcher Tune asks: Tune pickles the Tuner's scheduler and searcher
        # in one dump (tuner.pkl), so they come back as one object, and restores the searcher's state in place
        if self._searcher.stop_if_unneeded(trial.trial_id):
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        if self._asha is not None and self._stage1(trial):
            self._asha.on_trial_complete(tune_controller, trial, result)
        self._keep_worker(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        if self._asha is not None and self._stage1(trial):
            self._asha.on_trial_remove(tune_controller, trial)
