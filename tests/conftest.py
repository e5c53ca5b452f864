"""Shared fixtures: a real local Ray with two CPUs, started once per test module that asks for it."""

from __future__ import annotations

import logging

import pytest


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
