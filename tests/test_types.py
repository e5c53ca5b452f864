"""The pure core type-checks under ``mypy --strict`` (pydantic's plugin for the config)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE_CORE = ["hindsight_ray/core/objective.py", "hindsight_ray/search/policy.py", "hindsight_ray/config/schema.py",
             "hindsight_ray/config/files.py", "hindsight_ray/reporting/progress.py", "hindsight_ray/reporting/tables.py",
             "hindsight_ray/core/location.py", "hindsight_ray/search/rebuild.py",
             "hindsight_ray/running/checkpoint_repair.py", "hindsight_ray/core/disk.py", "hindsight_ray/core/atomic_fs.py",
             "hindsight_ray/core/layout.py", "hindsight_ray/core/trials.py", "hindsight_ray/search/rules.py"]


def test_the_pure_core_passes_mypy_strict():
    api = pytest.importorskip("mypy.api")
    stdout, stderr, status = api.run(["--strict", "--config-file", str(ROOT / "pyproject.toml"),
                                      "--cache-dir", str(ROOT / ".mypy_cache"), *(str(ROOT / p) for p in PURE_CORE)])
    assert status == 0, stdout + stderr
