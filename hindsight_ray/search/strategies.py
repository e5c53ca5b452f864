"""Strategy name -> Ray Tune search algorithm and scheduler, over the same layers x units x learning-rate space.

``two_stage`` is this project's search. The others are what it is compared with, on the same
space and an equal budget of trial-epochs (enforced by :class:`EpochBudget`):

- ``grid``: every (layers, units, learning rate) with the learning rates the two-stage rule can
  reach at its first levels (max, max/2, max/4, ...: K values), in an order shuffled by the seed
  (a budget that ends early then samples the whole grid, not its first rows) until the budget ends;
- ``random``: HINDSIGHT's random search: layers and units drawn from the grid, the learning rate
  log-uniform between max/2^K and max;
- ``manual``: an explicit list of configs (HINDSIGHT's manual search);
- ``bayes``: Optuna's TPE over the same space (Ray Tune's Optuna integration);
- ``asha``: random search under Ray Tune's ASHA scheduler.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ray import tune
from ray.tune import Stopper

from hindsight_ray.config.schema import STRATEGIES
from hindsight_ray.search.rules import stage2_iterations
from hindsight_ray.search.two_stage import TwoStageLimiter, TwoStageSearch

__all__ = ["STRATEGIES", "EpochBudget", "Strategy", "asha", "build_strategy"]


@dataclass
class Strategy:
    """What Tune needs to run one strategy."""

    name: str
    search_alg: Any
    scheduler: Any
    num_samples: int
    param_space: dict[str, Any] | None = None
    two_stage: TwoStageSearch | None = None


class EpochBudget(Stopper):
    """Stops the whole experiment once the trials together have trained ``budget`` epochs.

    Tune pickles its stopper with the experiment when the sweep starts and unpickles that copy on
    ``resume``; the count then starts again from what the trials of ``experiment_dir`` have already
    reported (each trial's last ``result.json`` line), so a resumed sweep spends the same budget."""

    def __init__(self, budget: int | None, experiment_dir: str | None = None) -> None:
        self.budget = budget
        self.experiment_dir = experiment_dir
        self.epochs: dict[str, int] | None = {}

    def _counts(self) -> dict[str, int]:
        if self.epochs is None:
            # first use after Tune unpickled us on resume
            self.epochs = trained_epochs(self.experiment_dir)
        return self.epochs

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        self._counts()[trial_id] = int(result.get("epoch", 0))
        return self.stop_all()

    def stop_all(self) -> bool:
        return self.budget is not None and sum(self._counts().values()) >= self.budget

    def __getstate__(self) -> dict[str, Any]:
        return {"budget": self.budget, "experiment_dir": self.experiment_dir, "epochs": None}


def trained_epochs(experiment_dir: str | None) -> dict[str, int]:
    """trial_id -> the last epoch each trial of a local experiment folder reported."""
    import json
    from pathlib import Path

    epochs: dict[str, int] = {}
    if not experiment_dir or "://" in experiment_dir:
        return epochs
    for path in Path(experiment_dir).glob("*/result.json"):
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        for line in reversed(lines):
            try:
                last = json.loads(line)
            except ValueError:
                # a line cut short by a crash
                continue
            epochs[str(last.get("trial_id"))] = int(last.get("epoch", 0))
            break
    return epochs


def learning_rates(max_learning_rate: float, iterations: int) -> list[float]:
    """The K learning rates of the grid: max, max/2, max/4, ..."""
    return [max_learning_rate / 2**i for i in range(iterations)]


def asha(epochs: int) -> Any:
    """Ray Tune's ASHA over a trial's epochs: grace period epochs/8, reduction factor 3."""
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="epoch", max_t=epochs, grace_period=max(1, epochs // 8), reduction_factor=3
    )


def shuffled_grid(
    layers: list[int], units: list[int], rates: list[float], seed: int
) -> list[dict[str, Any]]:
    """Every (layers, units, learning rate), in an order shuffled by ``seed``."""
    points = [
        {"layers": d, "units": w, "learning_rate": lr}
        for d in layers
        for w in units
        for lr in rates
    ]
    order = random.Random(seed).sample(range(len(points)), len(points))
    return [points[i] for i in order]


def _listed(
    name: str, points: list[dict[str, Any]], space: dict[str, Any], epochs: int, slots: int
) -> Strategy:
    """A strategy that runs exactly ``points``, in order. The space holds distributions (not constants)
    so that Tune fills them from the points without warning that a preset differs from a constant."""
    from ray.tune.search import BasicVariantGenerator

    listed = [{**point, "epochs": epochs} for point in points]
    return Strategy(
        name,
        BasicVariantGenerator(points_to_evaluate=listed, max_concurrent=slots),
        None,
        len(listed),
        param_space={**space, "epochs": tune.choice([epochs])},
    )


def build_strategy(
    name: str,
    *,
    layers: list[int],
    units: list[int],
    stage1_learning_rate: float,
    stage1_epochs: int,
    max_learning_rate: float,
    max_iterations: int,
    stage2_epochs: int,
    metric: str,
    mode: str,
    slots: int,
    seed: int,
    speculative: bool = False,
    early_stop: Any = None,
    manual: list[dict[str, Any]] | None = None,
    samples: int = 1000,
) -> Strategy:
    """The search algorithm, scheduler and sample count for ``name``; ``samples`` caps open-ended strategies
    (an :class:`EpochBudget` usually ends them first)."""
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    iterations = stage2_iterations(max_iterations)
    if name == "two_stage":
        search = TwoStageSearch(
            layers=layers,
            units=units,
            stage1_learning_rate=stage1_learning_rate,
            stage1_epochs=stage1_epochs,
            max_learning_rate=max_learning_rate,
            max_iterations=max_iterations,
            stage2_epochs=stage2_epochs,
            metric=metric,
            mode=mode,
            speculative=speculative,
        )
        return Strategy(
            name,
            TwoStageLimiter(search, max_concurrent=slots),
            search.scheduler(early_stop),
            search.total_trials,
            two_stage=search,
        )
    low = max_learning_rate / 2**iterations
    space = {
        "layers": tune.choice(layers),
        "units": tune.choice(units),
        "learning_rate": tune.loguniform(low, max_learning_rate),
        "epochs": stage2_epochs,
    }
    if name == "grid":
        points = shuffled_grid(layers, units, learning_rates(max_learning_rate, iterations), seed)
        return _listed(name, points, space, stage2_epochs, slots)
    if name in ("random", "asha"):
        scheduler = asha(stage2_epochs) if name == "asha" else None
        return Strategy(
            name,
            BasicVariantGenerator(max_concurrent=slots, random_state=seed),
            scheduler,
            samples,
            param_space=space,
        )
    if name == "manual":
        if not manual:
            raise ValueError(
                "the manual strategy needs a list of configs (layers, units, learning_rate)"
            )
        return _listed(name, manual, space, stage2_epochs, slots)
    if name == "bayes":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # metric, mode: from TuneConfig
        optuna_search = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=seed))
        return Strategy(
            name,
            ConcurrencyLimiter(optuna_search, max_concurrent=slots),
            None,
            samples,
            param_space=space,
        )
    raise ValueError(f"unknown strategy {name!r} (have: {', '.join(STRATEGIES)})")
