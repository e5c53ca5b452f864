"""A sweep in a real Jupyter kernel, as a notebook user runs it: the cell shows the plan, the stage lines and the
ending, and nothing else (no TensorFlow or absl start-up lines, no tqdm or Ray widget notices, no empty display
left by Tune's notebook reporter, which also cleared the plan); the result shows as one line."""

from __future__ import annotations

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

pytestmark = pytest.mark.slow


def test_a_sweep_in_a_notebook_cell_shows_its_own_lines_and_nothing_else(tmp_path):
    settings = ["search.stage1.layers=[1]", "search.stage1.units=[4]", "search.stage1.epochs=2",
                "search.stage2.max_iterations=1", "search.stage2.epochs=2", "data.lags=6"]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("import hindsight_ray as hr"),
        nbformat.v4.new_code_cell(f"result = hr.sweep(overrides={settings!r}, storage={str(tmp_path)!r}, name='nb')"),
        nbformat.v4.new_code_cell("result"),
    ]
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    imported, swept, shown = (cell.outputs for cell in notebook.cells)
    assert imported == []
    assert [output.output_type for output in swept] == ["stream"] * len(swept)  # no display, no error
    assert {output.name for output in swept} == {"stdout"}, [o.text for o in swept if o.name != "stdout"]
    text = "".join(output.text for output in swept)
    lines = text.splitlines()
    assert lines[0] == "experiment  nb" and any(line.startswith("stage 1     ") for line in lines)  # the plan
    assert any(line.startswith("stage 2: iteration 2/2") for line in lines)
    assert lines[-1].startswith("done in ") and "best layers=1 units=4" in lines[-1]
    (result,) = shown
    assert result.output_type == "execute_result"
    assert result.data["text/plain"].startswith(f"SweepResult('{tmp_path / 'nb'}': 3 trials, best layers=1")
    assert "\n" not in result.data["text/plain"]
