"""The trainable's checkpoints: the scored epoch kept apart, and corrupt checkpoints skipped on restart."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # builds real Keras models


def save_checkpoint(folder, model, epoch, best_weights=None):
    from hindsight_ray.training.checkpoints import save_checkpoint

    folder.mkdir(parents=True)
    save_checkpoint(model, {"epoch": epoch, "curve": [1.0] * epoch}, str(folder), best_weights)


def tiny_model(seed):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3, 1)), keras.layers.LSTM(2), keras.layers.Dense(1)])
    model.compile(optimizer="rmsprop", loss="mse")
    return model


def test_a_corrupt_newest_checkpoint_falls_back_to_the_older_one(tmp_path, capsys):
    from ray.tune import Checkpoint

    from hindsight_ray.training.checkpoints import MODEL_FILE, restore_readable

    trial = tmp_path / "trial"
    older, newer = tiny_model(1), tiny_model(2)
    save_checkpoint(trial / "checkpoint_000001", older, epoch=3)
    save_checkpoint(trial / "checkpoint_000002", newer, epoch=6)
    model_file = trial / "checkpoint_000002" / MODEL_FILE
    model_file.write_bytes(model_file.read_bytes()[:200])  # truncated, as by a full disk
    state = {"epoch": 0}
    model, best = restore_readable(Checkpoint(str(trial / "checkpoint_000002")), state)
    assert state["epoch"] == 3 and best is None
    for mine, theirs in zip(model.get_weights(), older.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    err = capsys.readouterr().err
    assert "checkpoint_000002 cannot be read" in err and "trying the one before it" in err
    (trial / "checkpoint_000001" / MODEL_FILE).write_bytes(b"")  # now neither can be read
    assert restore_readable(Checkpoint(str(trial / "checkpoint_000002")), {"epoch": 0}) is None


def test_the_scored_epochs_weights_travel_beside_the_latest_model(tmp_path):
    from hindsight_ray.training.checkpoints import (
        BEST_WEIGHTS_FILE,
        load_scored_model,
        read_checkpoint,
    )

    latest, best = tiny_model(3), tiny_model(4)
    save_checkpoint(tmp_path / "checkpoint_000004", latest, epoch=4, best_weights=best.get_weights())
    assert (tmp_path / "checkpoint_000004" / BEST_WEIGHTS_FILE).exists()
    model, kept = read_checkpoint(str(tmp_path / "checkpoint_000004"))
    for mine, theirs in zip(model.get_weights(), latest.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)  # training goes on from the latest
    scored = load_scored_model(str(tmp_path / "checkpoint_000004"))
    for mine, theirs in zip(scored.get_weights(), best.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)  # the exported model is the scored epoch's
    assert json.loads((tmp_path / "checkpoint_000004" / "state.json").read_text())["epoch"] == 4
    assert kept is not None

