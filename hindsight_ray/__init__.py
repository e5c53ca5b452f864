"""hindsight-ray: a distributed two-stage hyperparameter sweeper for Keras LSTMs on Ray Tune.

Importing the package is cheap: Ray and TensorFlow load only when a sweep needs them.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = [
    "Interrupted",
    "SweepResult",
    "TwoStageLimiter",
    "TwoStageSearch",
    "UserError",
    "__version__",
    "load",
    "resume",
    "sweep",
]

_LAZY = {
    "TwoStageSearch": "hindsight_ray.search.two_stage",
    "TwoStageLimiter": "hindsight_ray.search.two_stage",
    "sweep": "hindsight_ray.api",
    "resume": "hindsight_ray.api",
    "load": "hindsight_ray.api",
    "SweepResult": "hindsight_ray.api",
    "UserError": "hindsight_ray.errors",
    "Interrupted": "hindsight_ray.safety",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hindsight_ray' has no attribute {name!r}")
