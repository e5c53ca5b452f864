"""hindsight-ray: a distributed two-stage hyperparameter sweeper for Keras LSTMs on Ray Tune.

Importing the package is cheap: Ray and TensorFlow load only when a sweep needs them.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["TwoStageSearch", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "TwoStageSearch":
        from hindsight_ray.search.two_stage import TwoStageSearch

        return TwoStageSearch
    raise AttributeError(f"module 'hindsight_ray' has no attribute {name!r}")
