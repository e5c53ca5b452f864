"""A trial that fails and starts again keeps every line of its result.json and progress.csv.

Ray's loggers copy the file from storage over the driver's copy when a trial starts again, and the
storage copy lags by up to one sync of the driver's files: the epochs reported since were lost. (Run
with Ray's own loggers, ``run(tmp_path, [])``, the same trial's result.json holds epochs 1-4, 7, 8.)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

EPOCHS = 8


def fails_once(config: dict) -> None:
    """Reports epochs 1..8, a checkpoint every 2; the first time through it dies after epoch 6."""
    import tempfile

    from ray import tune

    restored = tune.get_checkpoint()
    start = 0
    if restored is not None:
        with restored.as_directory() as folder:
            start = json.loads(Path(folder, "state.json").read_text())["epoch"]
    for epoch in range(start + 1, EPOCHS + 1):
        marker = Path(config["marker"])
        if epoch == 7 and not marker.exists():
            marker.touch()
            time.sleep(1)  # epoch 6's checkpoint is registered first
            raise RuntimeError("the node went away")
        if epoch % 2:
            tune.report({"epoch": epoch, "score": float(epoch)})
            continue
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "state.json").write_text(json.dumps({"epoch": epoch}))
            tune.report({"epoch": epoch, "score": float(epoch)}, checkpoint=tune.Checkpoint.from_directory(folder))
        if epoch == 4:
            time.sleep(1)  # the sync after the second checkpoint takes epochs 1-4 to storage


def run(tmp_path: Path, callbacks: list) -> Path:
    """The trial's folder in storage after a run with ``callbacks`` (Ray's own loggers when empty)."""
    from ray import tune

    name = f"once-{len(callbacks)}"  # Tune appends its default callbacks to the list

    tuner = tune.Tuner(
        fails_once,
        param_space={"marker": str(tmp_path / f"failed-{name}")},
        tune_config=tune.TuneConfig(metric="score", mode="min", num_samples=1),
        run_config=tune.RunConfig(
            storage_path=str(tmp_path), name=name, verbose=0, callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=1),
            # a sync of the driver's files to storage every second checkpoint: after epoch 4, not 6
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )
    result = tuner.fit()
    assert not result.errors
    # the driver's last sync to storage may still be under way when fit returns
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list((tmp_path / name).glob("fails_once_*/progress.csv"))
        if found:
            time.sleep(1)
            return found[0].parent
        time.sleep(0.2)
    raise AssertionError(f"the trial's files never reached storage: {sorted(tmp_path.rglob('*'))}")


def test_a_restarted_trial_keeps_the_epochs_it_reported_before_the_failure(tmp_path, local_ray, monkeypatch):
    from hindsight_ray.running.console import ProgressCsvLogger, ResultJsonLogger

    # no timed syncs: only the forced one after the second checkpoint
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "3600")
    trial_dir = run(tmp_path, [ResultJsonLogger(), ProgressCsvLogger()])
    lines = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4, 5, 6, 7, 8]  # 1-6, then 7-8 after the restart
    assert pd.read_csv(trial_dir / "progress.csv").epoch.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
