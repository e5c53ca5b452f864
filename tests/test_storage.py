"""The experiment store: local paths and pyarrow URIs, atomic writes, listing."""

from __future__ import annotations

import pytest

from hindsight_ray.storage import ExperimentStore, is_uri


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
