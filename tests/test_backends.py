"""The same sweep on Keras' JAX and PyTorch backends (CPU): a series sweep, SIGKILL and resume to the same
answer, a text sweep, the predictor in a fresh process without TensorFlow, a model loaded on another backend.

JAX is in the test extras (CI runs these on it); PyTorch's registry wheel brings 5 GB of CUDA libraries, so
CI does not carry it and its cases run where torch is installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hindsight_ray.training.backend import installed
from tests.faults import cli, decisions, has_checkpoint, sigkill_when

pytestmark = pytest.mark.slow

BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(not installed(name), reason=f"{name} is not installed"))
            for name in ("jax", "torch")]
SETTINGS = [  # stage 1 one round of the two slots, stage 2 two trials: the backend's part, not the search's
    "search.stage1.layers=[1]", "search.stage1.units=[4,8]", "search.stage1.epochs=4",
    "search.stage2.max_iterations=2", "search.stage2.epochs=4", "data.lags=6",
]


def sweep_args(storage: Path, name: str, backend: str) -> list[str]:
    return ["sweep", "--storage", str(storage), "--name", name, "--no-report",
            *[f"--set={s}" for s in [f"model.backend={backend}", *SETTINGS]]]


def python(code: str, cwd: Path) -> dict:
    """Run ``code`` in a fresh interpreter; its last stdout line, as JSON."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=BACKENDS)
def reference(request, tmp_path_factory):
    """(backend, the uninterrupted sweep's folder, its decisions)"""
    storage = tmp_path_factory.mktemp(request.param)
    process = cli(*sweep_args(storage, "whole", request.param), cwd=storage)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    return request.param, storage / "whole", decisions(storage / "whole")


def test_the_sweep_records_its_backend(reference):
    backend, experiment, _ = reference
    trials = pd.read_parquet(experiment / "trials.parquet")
    assert set(trials.backend) == {backend} and (trials.status == "TERMINATED").all()
    assert json.loads((experiment / "preprocessing.json").read_text())["backend"] == backend
    assert np.isfinite(trials.val_rmse).all() and not trials.cudnn.any()  # CPUs: no cuDNN kernel


def test_sigkill_then_resume_decides_like_an_uninterrupted_run(reference, tmp_path):
    backend, _, expected = reference
    experiment = tmp_path / "killed"
    sigkill_when(cli(*sweep_args(tmp_path, "killed", backend), cwd=tmp_path, start_new_session=True),
                 lambda: has_checkpoint(experiment, 1))
    resumed = cli("resume", str(experiment), cwd=tmp_path)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert decisions(experiment) == expected  # deterministic on this backend too: the same answer


def test_the_predictor_loads_in_a_fresh_process_without_tensorflow_and_on_another_backend(reference):
    backend, experiment, _ = reference
    code = """
        import json, sys
        import hindsight_ray as hr
        import pandas as pd
        from hindsight_ray.data.sources import BUILTINS, builtin_path
        predictor = hr.load(EXPERIMENT).predictor(backend=BACKEND)
        forecast = predictor.predict(pd.read_csv(builtin_path(BUILTINS["airline"])))
        import keras
        print(json.dumps({"tensorflow": "tensorflow" in sys.modules, "backend": keras.backend.backend(),
                          "forecast": [float(v) for v in forecast.iloc[:, -1].tail(5)]}))
    """.replace("EXPERIMENT", repr(str(experiment)))
    own = python(code.replace("BACKEND", "None"), experiment.parent)  # the sweep's own backend
    assert own["backend"] == backend and not own["tensorflow"]
    on_tensorflow = python(code.replace("BACKEND", "'tensorflow'"), experiment.parent)  # a .keras file loads on any
    assert on_tensorflow["backend"] == "tensorflow"
    np.testing.assert_allclose(on_tensorflow["forecast"], own["forecast"], rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_text_sweep_never_imports_tensorflow(tmp_path, backend):
    rng = np.random.default_rng(0)
    good, bad, filler = ["great", "superb", "moving"], ["awful", "boring", "dull"], ["plot", "actor", "film", "the"]
    rows = []
    for i in range(120):
        words = [*rng.choice(filler, 6), *rng.choice(good if i % 2 else bad, 2)]
        rows.append({"text": " ".join(words) + "!", "label": "positive" if i % 2 else "negative"})
    pd.DataFrame(rows).to_csv(tmp_path / "reviews.csv", index=False)
    overrides = [f"model.backend={backend}", "data.kind=text", f"data.source={tmp_path / 'reviews.csv'}",
                 "data.max_length=12", "data.num_words=50", "search.stage1.layers=[1]", "search.stage1.units=[4,8]",
                 "search.stage1.epochs=3", "search.stage1.learning_rate=0.01", "search.stage2.max_iterations=1",
                 "search.stage2.epochs=3"]
    result = python(f"""
        import json, sys
        import hindsight_ray as hr
        result = hr.sweep(overrides={overrides!r}, storage={str(tmp_path)!r}, name="text", report=False)
        probabilities = result.predictor().predict(["a great and superb film", "an awful boring plot"])
        import keras
        print(json.dumps({{"tensorflow": "tensorflow" in sys.modules, "backend": keras.backend.backend(),
                          "accuracy": result.summary["best"]["test_accuracy"],
                          "p": [float(p) for p in probabilities.reshape(-1)]}}))
    """, tmp_path)
    assert result["backend"] == backend and not result["tensorflow"]  # the driver: data, evaluation, export
    assert 0 <= result["accuracy"] <= 1 and all(0 <= p <= 1 for p in result["p"])
    trials = pd.read_parquet(tmp_path / "text" / "trials.parquet")
    assert set(trials.backend) == {backend} and len(trials) == 2 + 2
