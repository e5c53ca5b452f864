"""A copied or moved experiment folder: the trials Tune creates after a resume go where the folder is now.

Ray re-points the trials it restores, not the experiment its search algorithm saved, so without
``relocate_search_algorithm`` every later trial inherits the folder the sweep began in."""

from __future__ import annotations

import shutil

import pytest

pytestmark = pytest.mark.slow  # imports Ray (no Ray starts)

tune = pytest.importorskip("ray.tune")

from ray.tune.experiment import Experiment  # noqa: E402
from ray.tune.search import BasicVariantGenerator, Searcher, SearchGenerator  # noqa: E402

from hindsight_ray.core.experiment import ExperimentStore  # noqa: E402
from hindsight_ray.running.searcher_state import relocate_search_algorithm  # noqa: E402


def _train(config):
    pass


class _Ones(Searcher):
    def suggest(self, trial_id):
        return {"x": 1}

    def save(self, checkpoint_path):
        open(checkpoint_path, "w").close()

    def restore(self, checkpoint_path):
        pass


def _grid():
    return BasicVariantGenerator(), {"x": tune.grid_search([1, 2, 3])}


def _searcher():
    return SearchGenerator(_Ones(metric="score", mode="min")), {}


@pytest.mark.parametrize("make", [_grid, _searcher], ids=["grid", "searcher"])
def test_new_trials_of_a_copied_experiment_go_to_the_copy(tmp_path, make):
    import pyarrow.fs as pafs

    search, space = make()
    search.add_configurations([Experiment("begun", _train, config=space, num_samples=3,
                                        storage_path=str(tmp_path / "a"))])
    assert search.next_trial().storage.experiment_fs_path == str(tmp_path / "a" / "begun")
    (tmp_path / "a" / "begun").mkdir(parents=True, exist_ok=True)
    search.save_to_dir(str(tmp_path / "a" / "begun"), "2026-12-03_10-00-00")
    assert relocate_search_algorithm(ExperimentStore(tmp_path / "a" / "begun"), pafs.LocalFileSystem()) == []

    shutil.copytree(tmp_path / "a" / "begun", tmp_path / "b" / "copy")
    rewritten = relocate_search_algorithm(ExperimentStore(tmp_path / "b" / "copy"), pafs.LocalFileSystem())
    assert len(rewritten) == 1
    restored, _ = make()
    restored.restore_from_dir(str(tmp_path / "b" / "copy"))
    assert restored.next_trial().storage.experiment_fs_path == str(tmp_path / "b" / "copy")
    # the original is left as it was
    again, _ = make()
    again.restore_from_dir(str(tmp_path / "a" / "begun"))
    assert again.next_trial().storage.experiment_fs_path == str(tmp_path / "a" / "begun")
