"""The TensorBoard curves are an extra: a write that fails (a full disk) turns them off and raises nothing."""

from __future__ import annotations

import errno

import pytest

pytest.importorskip("ray.tune")
tensorboardX = pytest.importorskip("tensorboardX")

from hindsight_ray.reporting.tensorboard_tracking import TensorBoardWriter, tag  # noqa: E402

pytestmark = pytest.mark.slow  # Ray Tune's Callback is the writer's base class: imports Ray (but starts none)


class Trial:
    trial_id, config = "t1", {"stage": 1, "layers": 1, "units": 4, "learning_rate": 0.001, "epochs": 3}


def test_the_sweeps_metric_comes_first():
    assert sorted([tag("loss", "val_rmse"), tag("val_mae", "val_rmse"), tag("val_rmse", "val_rmse"),
                   tag("epoch_s", "val_rmse")])[0] == "1_score/val_rmse"


def test_a_full_disk_turns_the_curves_off_without_an_error(tmp_path, monkeypatch):
    from tensorboardX.event_file_writer import EventsWriter

    writer = TensorBoardWriter(str(tmp_path), "val_rmse", "min")
    writer.on_trial_result(0, [], Trial(), {"epoch": 1, "val_rmse": 3.0})
    assert writer.broken is None and (tmp_path / "tensorboard" / "runs.json").exists()

    def full(self, event):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(EventsWriter, "write_event", full)
    writer.on_trial_result(0, [], Trial(), {"epoch": 2, "val_rmse": 2.0})  # raises nothing
    assert "No space left on device" in writer.broken
    writer.on_trial_result(0, [], Trial(), {"epoch": 3, "val_rmse": 1.0})
    writer.on_trial_complete(0, [], Trial())
    writer.on_experiment_end([])
