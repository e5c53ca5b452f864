"""A trial's checkpoint: the latest model (``model.keras``), the scored epoch's weights when that is an earlier
epoch (``best.weights.npz``) and the trial's state (``state.json``); reading it back, corrupt ones skipped."""

from __future__ import annotations

import json
import os
import posixpath
import sys
from pathlib import Path
from typing import Any

import numpy as np

from hindsight_ray.core.layout import CHECKPOINT_MODEL_FILE as MODEL_FILE
from hindsight_ray.core.layout import CHECKPOINT_STATE_FILE as STATE_FILE

BEST_WEIGHTS_FILE = "best.weights.npz"


def save_checkpoint(
    model: Any, state: dict[str, Any], folder: str, best_weights: list[np.ndarray] | None
) -> None:
    """The latest model and the trial's state; the weights of the scored epoch beside them when that epoch
    is an earlier one (so the best epoch survives ``keep_checkpoints`` and restarts)."""
    model.save(os.path.join(folder, MODEL_FILE))
    if best_weights is not None:
        np.savez(os.path.join(folder, BEST_WEIGHTS_FILE), *best_weights)
    with open(os.path.join(folder, STATE_FILE), "w", encoding="utf-8") as handle:
        json.dump(state, handle)


def _read_weights(path: str) -> list[np.ndarray]:
    with np.load(path) as arrays:
        return [arrays[f"arr_{index}"] for index in range(len(arrays.files))]


def read_checkpoint(folder: str) -> tuple[Any, list[np.ndarray] | None]:
    """A checkpoint folder's latest model and, when kept apart, the scored epoch's weights."""
    import keras

    model = keras.models.load_model(os.path.join(folder, MODEL_FILE), safe_mode=True)
    best = os.path.join(folder, BEST_WEIGHTS_FILE)
    return model, _read_weights(best) if os.path.exists(best) else None


def checkpoint_folders(fs: Any, trial_dir: str) -> list[str]:
    """A trial folder's ``checkpoint_*`` folders on ``fs`` (a pyarrow filesystem), newest first; OSError when
    the folder cannot be listed."""
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(trial_dir))
    return sorted(
        (
            info.path
            for info in infos
            if info.type == pafs.FileType.Directory and info.base_name.startswith("checkpoint_")
        ),
        reverse=True,
    )


def checkpoint_history(checkpoint: Any) -> list[Any]:
    """The checkpoint Tune hands a restarted trial, then the same trial's older ones still kept
    (``run.keep_checkpoints``), newest first."""
    from ray.tune import Checkpoint

    fs, path = checkpoint.filesystem, checkpoint.path.rstrip("/")
    parent, name = posixpath.split(path)
    try:
        folders = checkpoint_folders(fs, parent)
    except OSError:
        return [checkpoint]
    older = [folder for folder in folders if posixpath.basename(folder) < name]
    return [checkpoint, *(Checkpoint(older_path, filesystem=fs) for older_path in older)]


def checkpoint_left_on_disk(fs: Any, trial_dir: str, epoch: Any) -> str | None:
    """A finished trial's newest checkpoint folder when Tune did not register it, if it holds the trial's last
    reported epoch. (When an epoch budget is spent Tune stops every trial at once, and a trial whose final
    epoch spent it can be stopped while its final checkpoint is still being registered: the checkpoint is
    on storage all the same.)"""
    try:
        folders = checkpoint_folders(fs, trial_dir)
        if not folders or epoch is None:
            return None
        with fs.open_input_stream(posixpath.join(folders[0], STATE_FILE)) as handle:
            state = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    return str(folders[0]) if state.get("epoch") == epoch else None


def restore_readable(
    checkpoint: Any, state: dict[str, Any]
) -> tuple[Any, list[np.ndarray] | None] | None:
    """The newest readable checkpoint of a restarted trial: its model and scored weights, its state merged
    into ``state``; a corrupt one (truncated ``model.keras``, say) is named on stderr and the older one is
    tried. None when none can be read (the trial then starts again from its first epoch)."""
    import keras

    # a reused worker starts each trial from a clean Keras state
    keras.backend.clear_session(free_memory=False)
    for candidate in checkpoint_history(checkpoint):
        try:
            with candidate.as_directory() as folder:
                saved = json.loads(Path(folder, STATE_FILE).read_text(encoding="utf-8"))
                model, best = read_checkpoint(folder)
        except Exception as exc:
            # any unreadable file: keras, zip, json and OS errors alike
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            print(
                f"hindsight-ray: checkpoint {candidate.path} cannot be read ({type(exc).__name__}: {detail}); "
                "trying the one before it",
                file=sys.stderr,
                flush=True,
            )
            continue
        state.update(saved)
        return model, best
    return None


def load_scored_model(folder: str) -> Any:
    """The model a checkpoint holds for its trial's score: the scored (best) epoch's weights when they
    were kept apart, else the latest model."""
    model, best = read_checkpoint(folder)
    if best is not None:
        model.set_weights(best)
    return model
