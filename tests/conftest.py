"""Shared fixtures: a real local Ray with two CPUs, started once for the modules that ask for it."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile

import pytest

HEAVY = ("ray", "tensorflow", "keras")


def pytest_configure(config):
    """``pytest -m "not slow"`` (the unit tests) runs without Ray and TensorFlow: importing either fails
    there, so a unit test that starts needing them is caught at once."""
    # Ray runs its workers at niceness 15: beside other work at 0 (CI beside other jobs) each trial worker
    # then gets a few percent of a core and the suite crawls. The tests assert the order of events, not
    # their speed: their Ray workers (every Ray a test or a command it spawns starts) run at 0.
    os.environ.setdefault("RAY_worker_niceness", "0")
    # Every Ray the tests start (fixtures, spawned commands, their workers) lives under this run's own temp
    # root: a Ray started without an address joins "the last cluster started here" found in its temp root,
    # which must never be a user's `ray start` on this machine or another test run's (or pytest-xdist
    # worker's, for those who run the suite with -n: a worker never keeps the root its controller made).
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker or not os.environ.get("RAY_TMPDIR"):
        os.environ["RAY_TMPDIR"] = config._hindsight_ray_tmp = tempfile.mkdtemp(prefix=f"hr-{worker or 'main'}-",
                                                                               dir="/tmp")
    if config.option.markexpr.replace(" ", "") == "notslow":
        for name in HEAVY:
            sys.modules.setdefault(name, None)  # type: ignore[assignment]
    # TensorFlow imported by a test in this process computes as in the trials and the driver (oneDNN off:
    # the last bits of a prediction depend on it), whichever test imports it first
    from hindsight_ray.training.backend import use_trial_numerics

    use_trial_numerics()


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: a worker per core, at most 4 (each worker's tests hold a local Ray, TensorFlow and the
    sweeps they spawn: about 3 GB)."""
    return max(1, min(os.cpu_count() or 1, 4))


# pytest-xdist (``--dist loadfile``) gives each module to one worker (its module-scoped Ray, cluster, S3
# server or sweep is made once) in the order collected: the longest modules first (seconds measured in
# clean-clone CI runs; a module not named here is short), so that no worker is left alone with a long one at
# the end. The three fault modules share the stopped sweep (tests/faults.py): test_resume.py makes it first,
# the other two come after the next long modules, so that they find it made instead of waiting on its lock.
LONGEST_FIRST = ("test_resume.py", "test_two_node_cluster.py", "test_backends.py", "test_s3.py", "test_campaign.py",
                 "test_resume_phases.py", "test_resume_damage.py", "test_sweep.py", "test_two_stage_tune.py",
                 "test_cluster.py", "test_notebook.py", "test_gpu_check.py", "test_predict.py", "test_address.py",
                 "test_builder.py", "test_api.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a module keeps its own order


def pytest_unconfigure(config):
    folder = getattr(config, "_hindsight_ray_tmp", None)
    if folder:  # every Ray of this process has stopped with its fixture or its spawned command
        shutil.rmtree(folder, ignore_errors=True)


_SHARED_RAY: dict[str, str] = {}


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray with two CPUs in this process, shared by every module that asks for it: started by
    the first, kept while no other Ray replaces it (a test that needs logical GPUs or a simulated cluster
    stops it and starts its own; the next module to ask starts it again), stopped when the run ends. (A
    Ray kept up costs the spawned sweeps nothing since their Ray's agent no longer waits for its port.)"""
    ray = pytest.importorskip("ray")
    from hindsight_ray.training.backend import DEFAULT, worker_env

    if not (ray.is_initialized() and ray.get_runtime_context().gcs_address == _SHARED_RAY.get("gcs")):
        if ray.is_initialized():
            ray.shutdown()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": worker_env(DEFAULT)})
        _SHARED_RAY["gcs"] = ray.get_runtime_context().gcs_address
    yield ray


def pytest_sessionfinish(session, exitstatus):
    ray = sys.modules.get("ray")
    if _SHARED_RAY and ray is not None and ray.is_initialized():
        ray.shutdown()  # before pytest_unconfigure removes its temp root


@pytest.fixture(scope="session")
def reference_experiment(tmp_path_factory):
    """The folder of the default fault-test sweep run once without interruption, once per test run (every
    fault-test module and every pytest-xdist worker shares it): read it, or copy it before changing it."""
    from tests.faults import shared_run, uninterrupted_run

    return shared_run(tmp_path_factory, "reference", uninterrupted_run)


@pytest.fixture(scope="session")
def reference(reference_experiment):
    """The uninterrupted sweep's decisions: what every interrupted and resumed sweep of tests/faults.py must
    reach."""
    from tests.faults import decisions

    return decisions(reference_experiment)


@pytest.fixture(scope="session")
def stopped_in_stage2(tmp_path_factory):
    """The default fault-test sweep stopped by Ctrl-C at its plan, resumed and stopped by Ctrl-C in stage 1,
    resumed and stopped by SIGTERM in stage 2, once per test run (``stops.json`` beside it says what each
    stop printed): copy it before resuming it."""
    from tests.faults import shared_run, stopped_in_both_stages

    return shared_run(tmp_path_factory, "stopped", stopped_in_both_stages)
