"""The configuration reference is generated from the models, and ``hindsight-ray config`` says where
each value of a sweep's config came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from hindsight_ray import api, cli
from hindsight_ray.config.reference import BEGIN, END, fields, reference_markdown
from hindsight_ray.config.schema import SweepConfig
from hindsight_ray.core.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_the_docs_reference_is_the_generated_one():
    page = (ROOT / "docs" / "configuration.md").read_text()
    shown = BEGIN + page.split(BEGIN, 1)[1].split(END, 1)[0] + END + "\n"
    assert shown == reference_markdown(), "run: python -m hindsight_ray.config.reference"


def test_every_key_is_described_and_in_the_reference():
    reference = reference_markdown()
    for key, _default, description, _choices in fields(SweepConfig):
        assert description, f"{key} has no description"
        assert f"| `{key.rpartition('.')[2]}` |" in reference


def origins(lines: list[str]) -> dict[str, str]:
    """'  lags: 6   # --set' lines -> {'data.lags': '--set'}, parents from the indentation."""
    found, parents = {}, []
    for line in lines:
        depth = (len(line) - len(line.lstrip())) // 2
        parents = parents[:depth]
        name, _, rest = line.strip().partition(":")
        if "#" not in rest:
            parents.append(name)
            continue
        found[".".join([*parents, name])] = rest.rsplit("# ", 1)[1]
    return found


def test_each_value_says_where_it_came_from(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\nsearch:\n  stage1: {units: [4]}\n")
    lines = api.explain_config(str(path), ["data.lags=6", "run.mlflow={experiment: e}"], {"name": "x #1"})
    found = origins(lines)
    assert found["seed"] == f"config {path}" and found["search.stage1.units"] == f"config {path}"
    assert found["data.lags"] == "--set" and found["run.mlflow.experiment"] == "--set"
    assert found["name"] == "argument" and found["data.log"] == "dataset builtin:airline"
    assert found["search.stage1.layers"] == "default" and found["data.kind"] == "default"
    assert set(found) == {key for key, *_ in fields(SweepConfig)}
    assert 'name: "x #1"' in lines[0]  # quoted: YAML would read `x #1` as x


def test_a_dataset_of_ones_own_brings_no_dataset_defaults():
    found = origins(api.explain_config(None, ["data.source=sales.csv"], None))
    assert found["data.source"] == "--set" and found["data.log"] == "default"


def test_the_command_prints_and_refuses_unknown_keys_in_one_line(capsys):
    assert cli.main(["config", "--set", "search.stage1.epochs=3"]) == 0
    out = capsys.readouterr().out
    assert "    epochs: 3" in out and "# --set" in out
    assert cli.main(["config", "--set", "nope=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "nope" in err[0]


def test_a_bad_value_is_the_sweep_s_error():
    with pytest.raises(UserError, match="lags"):
        api.explain_config(None, ["data.lags=0"], None)


def test_the_top_level_package_reaches_the_api_as_the_docs_write_it():
    import hindsight_ray as hr

    assert hr.api.explain_config is hr.explain_config and hr.plan is api.plan
