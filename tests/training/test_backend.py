"""The backend module's rules, without any framework: the environment each backend needs, and the refusals."""

from __future__ import annotations

import sys
import types

import pytest

from hindsight_ray.core.errors import UserError
from hindsight_ray.running.plan import check_backend
from hindsight_ray.training import backend


def test_each_backend_gets_its_own_environment():
    assert backend.worker_env("jax")["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"  # trials packed on one GPU share it
    assert "expandable_segments" in backend.worker_env("torch")["PYTORCH_CUDA_ALLOC_CONF"]
    assert backend.worker_env("tensorflow")["TF_ENABLE_ONEDNN_OPTS"] == "0"
    for name in backend.BACKENDS:
        env = backend.worker_env(name)
        assert env["KERAS_BACKEND"] == name
        assert not any(key.startswith("TF_") for key in env) or name == "tensorflow"


def test_keras_on_another_backend_already_is_refused_in_one_line(monkeypatch):
    fake = types.SimpleNamespace(backend=types.SimpleNamespace(backend=lambda: "torch"))
    monkeypatch.setitem(sys.modules, "keras", fake)
    assert backend.running() == "torch"
    with pytest.raises(backend.BackendError, match="runs Keras on torch already and cannot switch to jax"):
        backend.use("jax")


def test_a_backend_not_installed_is_one_line_before_ray_starts(monkeypatch):
    monkeypatch.setattr(backend, "installed", lambda name: name == "tensorflow")
    with pytest.raises(UserError, match=r"model.backend jax: jax is not installed here \(pip install 'hindsight-ray\[jax\]'\)"):
        check_backend("jax")
    check_backend("tensorflow")


def test_the_config_names_the_three_backends():
    from hindsight_ray.config.schema import load_config

    assert load_config(None, []).model.backend == "tensorflow"
    assert load_config(None, ["model.backend=jax"]).model.backend == "jax"
    with pytest.raises(UserError, match="model.backend"):
        load_config(None, ["model.backend=mxnet"])


def test_a_model_trained_on_a_backend_not_installed_here_is_one_line_naming_the_way_out(tmp_path, monkeypatch):
    import json

    from hindsight_ray.reporting.predictor import Predictor

    (tmp_path / "best_model.keras").write_bytes(b"not read before the check")
    (tmp_path / "preprocessing.json").write_text(json.dumps({"kind": None, "backend": "torch"}))
    monkeypatch.setattr(backend, "installed", lambda name: name != "torch")
    monkeypatch.delitem(sys.modules, "keras", raising=False)
    with pytest.raises(UserError, match=r"Keras' torch backend is not installed here .*predict --backend"):
        Predictor.load(tmp_path)
    (tmp_path / "preprocessing.json").write_text(json.dumps({"kind": None, "backend": "mxnet"}))
    with pytest.raises(UserError, match="backend is 'mxnet', not tensorflow, jax or torch"):
        Predictor.load(tmp_path)


@pytest.mark.slow
def test_tensorflow_imported_for_a_python_session_writes_nothing_to_its_stderr():
    """A notebook shows descriptor 2 in the cell: TensorFlow's C++ start-up lines ("Could not find cuda
    drivers", "All log messages before absl::InitializeLog()") ignore its log level and must not get there;
    what Python writes to stderr after the import still does."""
    import os
    import subprocess

    pytest.importorskip("tensorflow")
    code = ("import sys; from hindsight_ray.training import backend; keras = backend.use('tensorflow'); "
            "import tensorflow as tf; tf.constant(1.0) + 1; print('after', file=sys.stderr)")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "after", done.stderr


@pytest.mark.slow
def test_a_trials_tensorflow_imports_neither_jax_nor_matplotlib_and_both_import_after_it():
    """TFLite's JAX converter and Keras' image gallery import JAX and matplotlib with TensorFlow where they are
    installed (about a quarter of the import a trial's new worker waits for); a trial uses neither."""
    import subprocess

    pytest.importorskip("tensorflow")
    for name in ("jax", "matplotlib"):
        pytest.importorskip(name)  # held off only where installed: the test needs them to mean anything
    code = ("import sys; from hindsight_ray.training import backend; backend.configure('tensorflow', 1, trial=True); "
            "print(sorted(n for n in ('jax', 'matplotlib') if n in sys.modules)); "
            "import jax, matplotlib.pyplot; print('after')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "after"], done.stdout
    # the command's own process: JAX held off, matplotlib not (its report may draw while Keras is imported)
    code = code.replace("backend.configure('tensorflow', 1, trial=True)",
                        "backend.OWN_PROCESS = True; backend.configure('tensorflow', 1)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['matplotlib']", "after"], done.stdout
