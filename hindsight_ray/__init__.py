"""hindsight-ray: a distributed two-stage hyperparameter sweeper for Keras LSTMs on Ray Tune.

Importing the package is cheap: Ray and TensorFlow load only when a sweep needs them.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

# In a notebook without ipywidgets, importing Ray Tune writes two lines into the cell that are not ours to
# act on: tqdm's "IProgress not found" warning (Ray's tqdm_ray imports tqdm.auto) and Ray's "Missing packages:
# ['ipywidgets']" (its context widget). The sweep's own lines are the cell's output.
warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")
logging.getLogger("ray.widgets.util").setLevel(logging.WARNING)

# an experiment begun before the layered layout resumes: its pickles name the old modules
from hindsight_ray import _moved  # noqa: E402

_moved.install()

__version__ = "0.1.0"
__all__ = [
    "Interrupted",
    "SweepResult",
    "TwoStageLimiter",
    "TwoStageSearch",
    "UserError",
    "__version__",
    "api",
    "explain_config",
    "load",
    "plan",
    "resume",
    "sweep",
]

_LAZY = {
    "TwoStageSearch": "hindsight_ray.search.two_stage",
    "TwoStageLimiter": "hindsight_ray.search.two_stage",
    "sweep": "hindsight_ray.api",
    "resume": "hindsight_ray.api",
    "load": "hindsight_ray.api",
    "plan": "hindsight_ray.api",
    "explain_config": "hindsight_ray.api",
    "SweepResult": "hindsight_ray.api",
    "UserError": "hindsight_ray.core.errors",
    "Interrupted": "hindsight_ray.running.lock_and_signals",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "api":
        return importlib.import_module("hindsight_ray.api")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hindsight_ray' has no attribute {name!r}")
