"""Shared fixtures: a real local Ray with two CPUs, started once per test module that asks for it."""

from __future__ import annotations

import logging
import os
import sys

import pytest

HEAVY = ("ray", "tensorflow", "keras")


def pytest_configure(config):
    """``pytest -m "not slow"`` (the unit tests) runs without Ray and TensorFlow: importing either fails
    there, so a unit test that starts needing them is caught at once."""
    # Ray runs its workers at niceness 15: beside other work at 0 (CI beside other jobs) each trial worker
    # then gets a few percent of a core and the suite crawls. The tests assert the order of events, not
    # their speed: their Ray workers (every Ray a test or a command it spawns starts) run at 0.
    os.environ.setdefault("RAY_worker_niceness", "0")
    if config.option.markexpr.replace(" ", "") == "notslow":
        for name in HEAVY:
            sys.modules.setdefault(name, None)  # type: ignore[assignment]
    # TensorFlow imported by a test in this process computes as in the trials and the driver (oneDNN off:
    # the last bits of a prediction depend on it), whichever test imports it first
    from hindsight_ray.cluster import use_trial_numerics

    use_trial_numerics()


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    from hindsight_ray.cluster import WORKER_ENV

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": WORKER_ENV})
    yield ray
    ray.shutdown()
