"""The experiment store: local paths and pyarrow URIs, atomic writes, listing."""

from __future__ import annotations

import pytest

from hindsight_ray.core.experiment import ExperimentStore, is_uri


@pytest.mark.parametrize("as_uri", [False, True])
def test_write_read_list(tmp_path, as_uri):
    location = f"file://{tmp_path}/exp" if as_uri else str(tmp_path / "exp")
    store = ExperimentStore(location)
    assert is_uri(location) == as_uri and not store.exists()
    store.write_json("summary.json", {"a": 1})
    store.write_bytes("searcher-state-2.pkl", b"{}")
    store.write_bytes("searcher-state-1.pkl", b"{}")
    assert store.exists("summary.json") and store.read_json("summary.json") == {"a": 1}
    assert store.names("searcher-state-") == ["searcher-state-1.pkl", "searcher-state-2.pkl"]
    assert store.path("x.parquet").endswith("/exp/x.parquet")


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    store = ExperimentStore(str(tmp_path))
    store.write_json("summary.json", {"a": 1})
    with pytest.raises(TypeError):
        store.write_json("summary.json", {"a": object()})
    assert store.read_json("summary.json") == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_full_disk_is_one_line_naming_the_file_and_the_old_file_survives(tmp_path, monkeypatch):
    import errno
    import os

    from hindsight_ray.core.errors import UserError

    store = ExperimentStore(str(tmp_path))
    store.write_json("summary.json", {"kept": True})
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UserError, match=rf"cannot write {tmp_path}/summary.json: No space left on device; free some "
                                        "space, then resume"):
        store.write_json("summary.json", {"kept": False})
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert store.read_json("summary.json") == {"kept": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # no temporary file left behind


def test_result_files_follow_the_umask_like_rays_own(tmp_path):
    import os

    previous = os.umask(0o022)
    try:
        ExperimentStore(str(tmp_path)).write_bytes("trials.parquet", b"x")
        assert (tmp_path / "trials.parquet").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        ExperimentStore(str(tmp_path)).write_bytes("private.json", b"x")
        assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(previous)


def test_one_experiment_object_is_passed_on_and_pickles_as_its_uri(tmp_path):
    import pickle

    store = ExperimentStore(str(tmp_path / "exp"))
    # an entry point given the experiment itself keeps it; given a path, makes one
    assert ExperimentStore.of(store) is store
    assert ExperimentStore.of(str(tmp_path / "exp")) == store
    store.write_json("summary.json", {"a": 1})
    # Tune pickles its callbacks with the experiment: the URI travels, not a filesystem object
    state = store.__getstate__()
    assert state == {"uri": str(tmp_path / "exp")}
    again = pickle.loads(pickle.dumps(store))
    assert again == store and again.read_json("summary.json") == {"a": 1} and str(again) == store.uri


def test_a_plan_carries_one_experiment_object(tmp_path):
    from hindsight_ray.config.schema import build_config
    from hindsight_ray.running.plan import make_plan

    plan = make_plan(build_config({"name": "one", "storage": str(tmp_path)}))
    assert isinstance(plan.experiment, ExperimentStore)
    assert plan.experiment.uri == plan.experiment_dir == str(tmp_path / "one")
    assert plan.location is plan.experiment.where


def test_tables_round_trip_through_arrow_buffers_never_a_python_file(tmp_path, monkeypatch):
    """A parquet read from a Python file object (``io.BytesIO``) leaves Arrow's threads closing it after the
    read returns; at interpreter exit that aborts the process (apache/arrow#33975, seen as ``hr.load`` of an
    s3 URI exiting -6 after printing its answer). Reads and writes hand pyarrow Arrow streams over Arrow's
    own memory."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hindsight_ray.reporting.tables import parquet_bytes

    sources: list[object] = []
    real_read, real_write = pq.read_table, pq.write_table

    def read_table(source, *args, **kwargs):
        sources.append(source)
        return real_read(source, *args, **kwargs)

    def write_table(table, where, *args, **kwargs):
        sources.append(where)
        return real_write(table, where, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", read_table)
    monkeypatch.setattr(pq, "write_table", write_table)
    frame = pd.DataFrame({"trial_id": ["a", "b"], "val_loss": [0.5, 0.25]})
    store = ExperimentStore(str(tmp_path))
    store.write_bytes("trials.parquet", parquet_bytes(frame))
    pd.testing.assert_frame_equal(store.read_table("trials.parquet"), frame)
    assert len(sources) == 2
    assert all(isinstance(source, pa.NativeFile) for source in sources), sources
    assert isinstance(store.read_buffer("trials.parquet"), pa.Buffer)
