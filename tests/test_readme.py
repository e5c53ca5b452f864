"""The README's promises: two quickstart commands, and CI runs the second one."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quickstart_is_two_commands_and_ci_runs_the_tests_one():
    commands = quickstart_commands()
    assert len(commands) == 2
    assert "hindsight-ray sweep" in commands[0] and "pytest" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_docs_home_page_is_the_readme():
    readme = (ROOT / "README.md").read_text().replace("](docs/", "](")
    assert (ROOT / "docs" / "index.md").read_text() == readme, "copy README.md to docs/index.md"


def test_the_readme_stays_short_and_links_only_pages_that_exist():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= 12_500
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).is_file(), link


def python_api_example() -> str:
    section = (ROOT / "README.md").read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_python_api_example_is_the_launch_script():
    assert python_api_example() == (ROOT / "launch" / "examples" / "python_api.py").read_text()


@pytest.mark.slow
def test_the_python_api_example_runs_as_written(local_ray, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(ROOT / "launch" / "examples" / "python_api.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert "'validation':" in printed and "visits_t+1" in printed
    assert len(list((tmp_path / "hindsight_results").glob("*/summary.json"))) == 1
