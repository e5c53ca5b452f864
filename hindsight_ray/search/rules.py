"""The two-stage search's pure rules: the stage-2 trial count, the halving/bisection step, the decided
path replayed over known results, the stage-1 grid, and when a trial was cut short. No Ray, no state."""

from __future__ import annotations

import math

from hindsight_ray.core.objective import is_better


def stage2_iterations(max_iterations: int) -> int:
    """K, the number of stage-2 trials: the notebook's ``int(exp(log(n)/2)) + 1`` without its float error."""
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be at least 1, got {max_iterations}")
    return math.isqrt(max_iterations) + 1


def next_learning_rate(learning_rate: float, max_learning_rate: float, improved: bool) -> float:
    """Halve after an improvement, else bisect back towards the maximum."""
    return learning_rate / 2 if improved else (max_learning_rate + learning_rate) / 2


def decided_path(
    results: dict[float, float | None], max_learning_rate: float, iterations: int, mode: str
) -> list[tuple[float, float | None, bool]]:
    """The sequential rule replayed over known results (learning rate -> score, None if failed):
    ``(learning rate, score, improved)`` for each decision whose trial has a result, in order."""
    path: list[tuple[float, float | None, bool]] = []
    learning_rate = max_learning_rate
    while len(path) < iterations and learning_rate in results:
        score = results[learning_rate]
        improved = not path or is_better(score, path[-1][1], mode)
        path.append((learning_rate, score, improved))
        learning_rate = next_learning_rate(learning_rate, max_learning_rate, improved)
    return path


def architecture_grid(layers: list[int], units: list[int]) -> list[tuple[int, int]]:
    """Every (layers, units) pair, depth-major, in the order given."""
    return [(depth, width) for depth in layers for width in units]
