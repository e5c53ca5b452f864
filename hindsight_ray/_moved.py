"""Where the modules of hindsight-ray 0.1 before its layered layout went: an experiment begun then holds
pickles (Tune's ``tuner.pkl``: the search, its callbacks) naming ``hindsight_ray.console.TrialClock`` and the
like. This import hook answers those old names with the modules that hold the same classes now, so
``hindsight-ray resume`` finishes such an experiment. It serves only the names below, and only when asked."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

# old module -> the module that holds its classes and functions now
MOVED = {
    "hindsight_ray.campaign": "hindsight_ray.running.campaign",
    "hindsight_ray.checkpoints": "hindsight_ray.training.checkpoints",
    "hindsight_ray.cluster": "hindsight_ray.running.cluster",
    "hindsight_ray.config_files": "hindsight_ray.config.files",
    "hindsight_ray.console": "hindsight_ray.running.console",
    "hindsight_ray.errors": "hindsight_ray.core.errors",
    "hindsight_ray.finalize": "hindsight_ray.running.finalize",
    "hindsight_ray.metrics": "hindsight_ray.core.metrics",
    "hindsight_ray.model": "hindsight_ray.training.model",
    "hindsight_ray.objective": "hindsight_ray.core.objective",
    "hindsight_ray.plan": "hindsight_ray.running.plan",
    "hindsight_ray.predict": "hindsight_ray.reporting.predictor",
    "hindsight_ray.progress": "hindsight_ray.reporting.progress",
    "hindsight_ray.report": "hindsight_ray.reporting.report",
    "hindsight_ray.report_html": "hindsight_ray.reporting.report_html",
    "hindsight_ray.results": "hindsight_ray.reporting.tables",
    "hindsight_ray.runner": "hindsight_ray.running.runner",
    "hindsight_ray.safety": "hindsight_ray.running.lock_and_signals",
    "hindsight_ray.storage": "hindsight_ray.core.experiment",
    "hindsight_ray.trainable": "hindsight_ray.training.trainable",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        # the module it names has run already
        pass


class MovedModules(importlib.abc.MetaPathFinder):
    """Finds an old module name (and nothing else) as the module it moved to."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        moved = MOVED.get(fullname)
        return None if moved is None else importlib.util.spec_from_loader(fullname, _Alias(moved))


def install() -> None:
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        # last: a module that exists is always found first
        sys.meta_path.append(MovedModules())
