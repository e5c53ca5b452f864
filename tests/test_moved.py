"""An experiment begun before the layered layout: its pickles name the old modules, and resume finds them."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import pytest

from hindsight_ray import _moved

PACKAGE = Path(__file__).resolve().parents[1] / "hindsight_ray"


def test_every_old_name_points_at_a_module_that_exists_and_shadows_none():
    for old, new in _moved.MOVED.items():
        assert (PACKAGE / (new.removeprefix("hindsight_ray.").replace(".", "/") + ".py")).is_file(), new
        # the hook is asked only for names no module has
        relative = old.removeprefix("hindsight_ray.")
        assert not (PACKAGE / f"{relative}.py").exists() and not (PACKAGE / relative).is_dir(), old


def test_an_old_name_is_the_new_module_itself():
    moved = importlib.import_module("hindsight_ray.objective")
    assert moved is importlib.import_module("hindsight_ray.core.objective")
    assert moved.Objective.__module__ == "hindsight_ray.core.objective"
    # anything else under the package is still not found
    assert importlib.util.find_spec("hindsight_ray.no_such_module") is None


@pytest.mark.slow
def test_tune_state_pickled_by_the_flat_layout_loads_as_todays_classes():
    """``tuner.pkl`` of a sweep interrupted in stage 1 by the version of 2026-11 (modules hindsight_ray.console,
    hindsight_ray.objective, ...): Tune's restore unpickles it; each callback is today's class and names the
    experiment's folder (then kept as a string)."""
    pytest.importorskip("ray.tune")
    from hindsight_ray.core.experiment import ExperimentStore
    from hindsight_ray.running.console import Progress, StageConsole, TrialClock
    from hindsight_ray.search.two_stage import TwoStageLimiter

    state = pickle.loads((Path(__file__).parent / "data" / "pre_layers_tuner.pkl").read_bytes())
    callbacks = state["_run_config"].callbacks
    kinds = {type(callback) for callback in callbacks}
    assert {TrialClock, StageConsole, Progress} <= kinds
    clock = next(c for c in callbacks if isinstance(c, TrialClock))
    assert clock.experiment == ExperimentStore("/tmp/oldexp/res/old4")
    assert isinstance(state["_tune_config"].search_alg, TwoStageLimiter)
