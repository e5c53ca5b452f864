"""W&B through Ray Tune's WandbLoggerCallback, offline (nothing leaves the machine): a run per trial on disk."""

from __future__ import annotations

import pytest

pytest.importorskip("wandb")

pytestmark = pytest.mark.slow


def test_an_offline_wandb_run_per_trial(local_ray, tmp_path, monkeypatch):
    import hindsight_ray as hr

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-home"))
    result = hr.sweep(overrides=[
        "search.stage1.layers=[1]", "search.stage1.units=[4]", "search.stage1.epochs=2",
        "search.stage2.max_iterations=1", "search.stage2.epochs=2", "data.lags=6",
        "run.callbacks=[wandb]", "run.wandb.project=hr-test",
    ], storage=str(tmp_path), name="wb", echo=lambda line: None, report=False)
    runs = sorted(p for p in (tmp_path / "wb").glob("*/wandb/offline-run-*") if p.is_dir())
    assert len(runs) == len(result.trials) == 1 + 2  # one trial in stage 1, two in stage 2
    assert all(list(run.glob("run-*.wandb")) for run in runs)  # each holds its run's records, for wandb sync
