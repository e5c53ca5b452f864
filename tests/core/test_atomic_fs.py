"""The storage filesystem Ray writes through: a file appears whole or not at all."""

from __future__ import annotations

import errno
import os
import pickle

import pyarrow.fs as pafs
import pytest

from hindsight_ray.core import atomic_fs
from hindsight_ray.core.atomic_fs import atomic_local_filesystem
from hindsight_ray.core.disk import is_disk_full


def test_a_finished_write_replaces_the_file_and_a_copied_tree_lands_whole(tmp_path):
    fs = atomic_local_filesystem()
    with fs.open_output_stream(str(tmp_path / "state.json")) as out:
        out.write(b'{"v": 1}')
    assert (tmp_path / "state.json").read_bytes() == b'{"v": 1}'
    source = tmp_path / "src" / "checkpoint_000000"
    source.mkdir(parents=True)
    (source / "model.keras").write_bytes(b"m" * 1000)
    pafs.copy_files(str(tmp_path / "src"), str(tmp_path / "trial"), destination_filesystem=fs)
    assert (tmp_path / "trial" / "checkpoint_000000" / "model.keras").read_bytes() == b"m" * 1000
    assert oct((tmp_path / "state.json").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert pickle.loads(pickle.dumps(fs)) == fs  # travels to trial workers


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_write_that_fails_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    fs = atomic_local_filesystem()
    target = tmp_path / "experiment_state.json"
    target.write_bytes(b"the previous snapshot")

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_fs._AtomicWriter, "write", lambda self, data: (setattr(self, "_failed", True),
                                                                              full(self, data)))
    with pytest.raises(OSError) as caught:
        with fs.open_output_stream(str(target)) as out:
            out.write(b"half a new snap")
    assert is_disk_full(caught.value)
    assert target.read_bytes() == b"the previous snapshot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment_state.json"]


def test_disk_full_is_told_apart():
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_disk_full(OSError("Error writing bytes to file. Detail: [errno 28] No space left on device"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("No space left on device"))
