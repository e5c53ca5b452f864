"""Before a resume: make each trial's checkpoint folders agree with the experiment snapshot Ray restores from.

Ray prunes a trial's old checkpoints (``run.keep_checkpoints``) as soon as it registers a new one, but
uploads the experiment snapshot that names the new one later (on object storage, seconds later). A driver
killed in between leaves a snapshot that names a checkpoint already deleted, and Ray then fails that trial
on every retry ("does not exist on storage anymore"). The newer checkpoints are on storage all the same:
the newest is put where the snapshot looks, so the trial goes on from its latest epoch (its ``state.json``
says which), and folders the snapshot does not know are removed before Ray writes new checkpoints over
them (a stale ``best.weights.npz`` left in a reused folder would otherwise be read as the scored epoch's).
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from hindsight_ray.core.layout import SNAPSHOT_PREFIX as STATE_PREFIX
from hindsight_ray.core.location import ExperimentLocation
from hindsight_ray.training.checkpoints import checkpoint_folders


def checkpoint_index(path: str) -> int:
    """``.../checkpoint_000012`` -> 12 (-1 for a name that is not a checkpoint folder)."""
    name = posixpath.basename(path.rstrip("/"))
    digits = name.removeprefix("checkpoint_")
    return int(digits) if digits.isdigit() else -1


def plan_repair(
    recorded: str | None, folders: list[str], exists: bool
) -> tuple[str | None, list[str]]:
    """What to do with one trial: the folder to copy to ``recorded`` (None: nothing to copy) and the folders
    the snapshot does not know, to remove. ``folders``: the trial's checkpoint folders on storage;
    ``exists``: whether ``recorded`` (the snapshot's latest checkpoint, None when it has none) is there."""
    known = checkpoint_index(recorded) if recorded else -1
    newer = sorted(
        (f for f in folders if checkpoint_index(f) > known), key=checkpoint_index, reverse=True
    )
    source = newer[0] if recorded is not None and not exists and newer else None
    return source, newer


def _trials(location: ExperimentLocation) -> list[tuple[str, str | None]]:
    """(trial folder, its latest checkpoint) for every trial of the newest experiment snapshot, on ``fs``."""
    import pyarrow.fs as pafs
    from ray.tune.experiment.trial import Trial
    from ray.tune.trainable.metadata import _TrainingRunMetadata

    infos = location.fs.get_file_info(pafs.FileSelector(location.path))
    states = sorted(
        i.path
        for i in infos
        if i.base_name.startswith(STATE_PREFIX) and i.base_name.endswith(".json")
    )
    if not states:
        return []
    with location.fs.open_input_stream(states[-1]) as handle:
        snapshot = json.loads(handle.read())
    found = []
    for trial_json, metadata_json in snapshot.get("trial_data", []):
        trial = Trial.from_json_state(trial_json, stub=True)
        metadata = _TrainingRunMetadata.from_json_state(metadata_json)
        manager: Any = metadata.checkpoint_manager
        latest = manager.latest_checkpoint_result if manager is not None else None
        recorded = (
            latest.checkpoint.path if latest is not None and latest.checkpoint is not None else None
        )
        if trial.storage is not None:
            # a trial without storage wrote no folder
            found.append((trial.storage.trial_fs_path, recorded))
    return found


def repair_missing_checkpoints(location: ExperimentLocation) -> list[str]:
    """Apply :func:`plan_repair` to every trial of the experiment; returns one line per trial repaired."""
    import pyarrow.fs as pafs

    fs, repaired = location.fs, []
    for trial_dir, recorded in _trials(location):
        try:
            folders = checkpoint_folders(fs, trial_dir)
        except OSError:
            # the trial never wrote a folder
            continue
        exists = recorded is not None and fs.get_file_info(recorded).type != pafs.FileType.NotFound
        source, unknown = plan_repair(recorded, folders, exists)
        if source is not None and recorded is not None:
            pafs.copy_files(source, recorded, source_filesystem=fs, destination_filesystem=fs)
            repaired.append(
                f"{posixpath.basename(trial_dir)}: {posixpath.basename(recorded)} was pruned before "
                f"the snapshot naming its successor was saved; going on from "
                f"{posixpath.basename(source)}"
            )
        for folder in unknown:
            fs.delete_dir(folder)
    return repaired
