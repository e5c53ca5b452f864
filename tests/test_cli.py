"""The real command line: plans, datasets, and one-line errors that write nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command in a process of its own, as a user runs it."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "hindsight_ray", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.fixture()
def cli(tmp_path, capsys, monkeypatch):
    """The command's ``main`` in this process (the same code path, without a second of start-up per test)."""
    from hindsight_ray.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess:
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    result = run_cli("sweep", "--dry-run", "--set", "search.stage1.units=[4,8,16]", "--name", "plan", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "stage 1     6 trials in parallel" in result.stdout
    assert "stage 2     5 trials one at a time" in result.stdout
    assert str(tmp_path / "hindsight_results" / "plan") in result.stdout
    assert not (tmp_path / "hindsight_results").exists()


def test_datasets_lists_both_bundled_series(cli):
    result = cli("datasets")
    assert result.returncode == 0
    assert "builtin:airline" in result.stdout and "144 rows" in result.stdout
    assert "builtin:sunspots" in result.stdout and "309 rows" in result.stdout
    assert "preprocessing by default: data.log: true, data.difference: true, data.seasonal_difference: true, data.scale: standard" in result.stdout


def test_config_file_and_overrides(tmp_path, cli):
    (tmp_path / "sweep.yaml").write_text("search:\n  stage1:\n    units: [4]\n    layers: [1, 2, 3]\n")
    result = cli("sweep", "sweep.yaml", "--dry-run", "--set", "search.stage2.max_iterations=9")
    assert result.returncode == 0, result.stderr
    assert "3 trials in parallel" in result.stdout and "4 trials one at a time" in result.stdout


BAD_INPUTS = [
    (["--set", "search.stage1.unit=[4]"], "unknown config key search.stage1.unit; did you mean search.stage1.units?"),
    (["--set", "search.stage1.units=[]"], "search.stage1.units: the grid is empty"),
    (["--set", "search.stage1.units=[0,4]"], "search.stage1.units: grid values must be positive"),
    (["--set", "search.stage1.layers=two"], "search.stage1.layers"),
    (["--set", "search.stage1.learning_rate=-0.1"], "search.stage1.learning_rate"),
    (["--set", "search.stage2.max_learning_rate=0"], "search.stage2.max_learning_rate"),
    (["--set", "search.strategy=annealing"], "search.strategy"),
    (["--set", "model.optimizer=adamax"], "model.optimizer"),
    (["--set", "data.kind=audio"], "data.kind"),
    (["--set", "data.split.validation=0.5", "--set", "data.split.test=0.45"], "leaves too little for training"),
    (["--set", "data.source=missing.csv"], "missing.csv: file not found"),
    (["--set", "data.source=builtin:nope"], "no such bundled dataset"),
    (["--set", "data.lags=500"], "144 rows are too few; lags=500, horizon=1 and a 20%/20% validation/test split need at least 856"),
    (["--set", "data.target=[seats]"], "no column 'seats'"),
    (["--set", "search.metric=val_accuracy"], "val_accuracy needs a classification task"),
    (["--set", "resources.gpus_per_trial=0.3"], "must divide 1"),
    (["--set", "resources.cpus_per_trial=0"], "resources.cpus_per_trial"),
    (["--set", "nonsense"], "expected KEY=VALUE"),
    (["--set", "seed=[1"], "not valid YAML"),
    (["missing.yaml"], "config file missing.yaml does not exist"),
    (["--set", "storage=afile/results"], "is a file, not a folder"),
    (["--set", "data.kind=text"], "no column 'text'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[m[:40] for _, m in BAD_INPUTS])
def test_bad_input_is_one_line_error_and_nothing_written(tmp_path, cli, args, message):
    (tmp_path / "afile").write_text("not a folder")
    result = cli("sweep", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "hindsight_results").exists()


def test_unparsable_config_file(tmp_path, cli):
    (tmp_path / "bad.yaml").write_text("search: [unclosed\n")
    result = cli("sweep", "bad.yaml")
    assert result.returncode == 2 and "is not valid YAML at line" in result.stderr
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    result = cli("sweep", "list.yaml")
    assert result.returncode == 2 and "must hold a mapping" in result.stderr


def test_existing_experiment_is_never_overwritten(tmp_path, cli):
    experiment = tmp_path / "hindsight_results" / "kept"
    experiment.mkdir(parents=True)
    (experiment / "summary.json").write_text("{}")
    result = cli("sweep", "--name", "kept")
    assert result.returncode == 2 and "already exists" in result.stderr
    assert (experiment / "summary.json").read_text() == "{}"


@pytest.mark.parametrize("name", ["run #3", "2024-11-24", "yes", "[x]"])
def test_name_storage_and_address_are_taken_literally(tmp_path, capsys, name):
    from hindsight_ray.cli import main

    assert main(["sweep", "--dry-run", "--name", name, "--storage", str(tmp_path / "s #1")]) == 0
    out = capsys.readouterr().out
    assert f"experiment  {name}\n" in out and f"results     {tmp_path / 's #1' / name}\n" in out


NUMBERS = [
    ("search.stage1.epochs=true", "search.stage1.epochs: expected a number, not true"),
    ("seed=false", "seed: expected a number, not false"),
    ("search.stage1.learning_rate=1e300", "search.stage1.learning_rate: Input should be less than or equal to 10"),
    ("search.stage2.max_learning_rate=.inf", "search.stage2.max_learning_rate"),
    ("resources.gpus_per_trial=.inf", "resources.gpus_per_trial: Input should be a finite number"),
    ("search.stage1.units=[8,true]", "search.stage1.units.1: expected a number"),
    ("search.score=median", "search.score"),
    ("search.score_last_k=0", "search.score_last_k"),
    ("resources.address=foo", "resources.address: must be auto, host:port"),
]


@pytest.mark.parametrize(("setting", "message"), NUMBERS, ids=[s for s, _ in NUMBERS])
def test_numbers_that_are_not_numbers_are_refused_in_one_line(tmp_path, capsys, setting, message):
    from hindsight_ray.cli import main

    assert main(["sweep", "--dry-run", "--storage", str(tmp_path), "--set", setting]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not any(tmp_path.iterdir())


def test_dry_run_checks_storage_too(tmp_path, capsys):
    from hindsight_ray.cli import main

    (tmp_path / "afile").write_text("x")
    assert main(["sweep", "--dry-run", "--storage", str(tmp_path / "afile" / "results")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    (tmp_path / "taken").mkdir(parents=True)
    assert main(["sweep", "--dry-run", "--storage", str(tmp_path), "--name", "taken"]) == 2
    assert "already exists" in capsys.readouterr().err


BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"] + [
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)]) + "\n"


def test_hostile_inputs_are_one_line_errors_before_anything_starts(tmp_path, capsys, monkeypatch):
    from hindsight_ray.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "bomb.yaml").write_text(BOMB + "search: {stage1: {units: *i}}\n")
    (tmp_path / "inf.csv").write_text("y\n" + "\n".join(["1", "2", "inf"] * 30) + "\n")
    (tmp_path / "empty.csv").write_text("y,z\n" + "\n".join(f"{i},"for i in range(90)) + "\n")
    cases = [
        (["sweep", "bomb.yaml", "--dry-run"], "expands to more than 100,000 values"),
        (["sweep", "--dry-run", "--set", "search.stage1.units=[300000]"], "needs about 13.0 TB to train, more than"),
        (["sweep", "--dry-run", "--set", "data.kind=text", "--set", "data.max_length=1000000000"], "sequence 1000000000"),
        (["sweep", "--dry-run", "--set", "data.kind=text", "--set", "data.num_words=1000000000000"],
         "vocabulary 1,000,000,000,000"),
        (["sweep", "--dry-run", "--set", "data.source=inf.csv"], "column 'y' has an infinite value at row 2"),
        (["sweep", "--dry-run", "--set", "data.source=empty.csv", "--set", "data.target=[y]", "--set",
          "data.features=[y,z]", "--set", "data.missing=interpolate"], "column 'z' has no values at all"),
        (["resume", "/"], "/ is not a hindsight-ray experiment folder"),
        (["report", "--debug", str(tmp_path)], "no summary.json"),
    ]
    for args, message in cases:
        if "--debug" in args:
            with pytest.raises(Exception, match="no summary.json"):  # --debug after the subcommand: a traceback
                main(args)
            continue
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.yaml", "empty.csv", "inf.csv"]


def test_the_installed_command_prints_one_line_and_exits_2(tmp_path):
    """The real process: stderr holds exactly the error line (no traceback, no Ray or TensorFlow noise)."""
    result = run_cli("sweep", "--set", "search.stage1.unit=[4]", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr == (
        "error: unknown config key search.stage1.unit; did you mean search.stage1.units?\n")
    assert result.stdout == "" and not (tmp_path / "hindsight_results").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("setting", "message"), [
    ("resources.gpus_per_trial=1", "asks for GPUs, but the cluster has none"),
    ("resources.cpus_per_trial=64", "more than any node has"),
])
def test_resources_no_node_has_are_refused_after_ray_starts_and_before_any_folder(tmp_path, setting, message):
    result = run_cli("sweep", "--set", setting, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "hindsight_results").exists()


def _acl(root: Path, pos: int = 20, neg: int = 20) -> Path:
    for split in ("train", "test"):
        for label, count in (("pos", pos), ("neg", neg)):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (folder / f"{i}_7.txt").write_text(f"review {label} {i} good bad")
    return root


def _npz(path: Path, y_train, y_test, rows: int = 50) -> Path:
    import numpy as np

    sequences = np.empty(rows, dtype=object)
    sequences[:] = [[1, 2, 3, 4]] * rows
    np.savez(path, x_train=sequences, y_train=np.array(y_train), x_test=sequences, y_test=np.array(y_test))
    return path


def _hostile_files(root: Path) -> dict[str, list[str]]:
    """Files a hostile tester tried, and the arguments that point a dry run at each."""
    import os

    import pandas as pd

    text = ["--set", "data.kind=text", "--set"]
    pd.DataFrame({"date": ["2020-01-01T00:00+00:00", "2020-01-02T00:00+05:00"] * 60, "y": range(120)}).to_csv(
        root / "mixed.csv", index=False)
    pd.DataFrame({"text": [None] * 100, "label": [0, 1] * 50}).to_csv(root / "nantext.csv", index=False)
    pd.DataFrame({"text": ["  "] * 100, "label": [0, 1] * 50}).to_csv(root / "emptytext.csv", index=False)
    (_acl(root / "acl_dir") / "train" / "pos" / "x.txt").mkdir()
    os.symlink("../pos", _acl(root / "acl_loop") / "train" / "pos" / "loop.txt")
    _acl(root / "acl_one", neg=0)
    _acl(root / "acl_few", pos=1, neg=1)
    _npz(root / "mismatch.npz", [0, 1] * 20, [0, 1] * 25)
    _npz(root / "strings.npz", ["a", "b"] * 25, ["a", "b"] * 25)
    _npz(root / "five.npz", [0, 5] * 25, [0, 5] * 25)
    (root / "garbage.npz").write_bytes(b"PK\x03\x04garbage" * 10)
    return {
        "mixed": ["--set", "data.source=mixed.csv", "--set", "data.date_column=date", "--set", "data.target=[y]"],
        "nantext": [*text, "data.source=nantext.csv"], "emptytext": [*text, "data.source=emptytext.csv"],
        **{name: [*text, f"data.source={name}"] for name in ("acl_dir", "acl_loop", "acl_one", "acl_few")},
        **{name: [*text, f"data.source={name}.npz"] for name in ("mismatch", "strings", "five", "garbage")},
    }


HOSTILE = [
    ("mixed", "column 'date' mixes UTC offsets or time zones"),
    ("nantext", "the training texts are all empty or missing (column 'text')"),
    ("emptytext", "the training texts are all empty or missing"),
    ("acl_dir", "train/pos/x.txt is not a readable file (a folder, or a broken or looping link)"),
    ("acl_loop", "train/pos/loop.txt is not a readable file"),
    ("acl_one", "train/neg holds no .txt reviews; a classifier needs both classes"),
    ("acl_few", "4 reviews are too few for a train/validation/test split"),
    ("mismatch", "y_train has 40 labels for 50 reviews"),
    ("strings", "y_train holds 'a'; Keras' imdb.npz labels are 0 (negative) and 1 (positive)"),
    ("five", "y_train holds 5"),
    ("garbage", "not an .npz archive"),
]


def test_hostile_files_are_one_line_errors_before_anything_starts(tmp_path, cli):
    files = _hostile_files(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for name, message in HOSTILE:
        result = cli("sweep", "--dry-run", *files[name])
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], (name, result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(("args", "message"), [
    (["sweep", "--dry-run", "--name", "a" * 300], "config key name: is 300 bytes long; a folder name can have at most 255"),
    (["sweep", "--dry-run", "--name", "a\x00b"], "config key name: must be a plain folder name"),
    (["sweep", "--dry-run", "--storage", "/tmp/x\x00y"], "config key storage: contains a NUL character"),
    (["sweep", "--dry-run", "--address", "foo"], "resources.address: must be auto, host:port"),
    (["sweep", "--dry-run", "--storage", "/proc/hindsight"], "storage /proc/hindsight is not writable"),
    (["sweep", "--address", "127.0.0.1:9"], "resources.address 127.0.0.1:9: nothing answers at 127.0.0.1:9"),
    (["report", "summary_only"], "summary_only/trials.parquet is missing; the sweep has not finished"),
    (["report", "bad_summary"], "bad_summary/summary.json is damaged (not readable JSON)"),
    (["resume", "foreign"], "foreign: config.json does not hold a hindsight-ray sweep config (unknown config key a)"),
])
def test_names_paths_and_foreign_folders_are_one_line_errors(tmp_path, cli, args, message):
    (tmp_path / "summary_only").mkdir()
    (tmp_path / "summary_only" / "summary.json").write_text('{"metric": "val_rmse"}')
    (tmp_path / "bad_summary").mkdir()
    (tmp_path / "bad_summary" / "summary.json").write_text("{not json")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "config.json").write_text('{"a": 1}')
    result = cli(*args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "hindsight_results").exists()


def test_a_plan_of_more_workers_than_this_machine_holds_is_refused_before_ray(tmp_path, capsys):
    from hindsight_ray.cli import main

    code = main(["sweep", "--dry-run", "--set", f"storage={tmp_path}", "--set", "resources.cpus_per_trial=0.001"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "trials at once on this machine" in err[0] and "max_concurrent" in err[0]
