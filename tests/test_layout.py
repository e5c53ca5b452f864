"""The names of Ray's own files, spelt in ``core/layout.py`` so that the pure layers need no Ray, are Ray's."""

import pytest

from hindsight_ray.core import layout


@pytest.mark.slow
def test_ray_s_file_names_are_ray_s_own_constants():
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.search import Searcher

    assert TuneController.CKPT_FILE_TMPL == layout.SNAPSHOT_PREFIX + "{}" + layout.SNAPSHOT_SUFFIX
    assert Searcher.CKPT_FILE_TMPL == layout.SEARCHER_PREFIX + "{}" + layout.SEARCHER_SUFFIX
