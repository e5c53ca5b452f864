"""Sweeps on S3: a real S3-compatible server (moto's) on 127.0.0.1, started and stopped by pid here.

A sweep SIGKILLed in stage 1 (the snapshot then naming a checkpoint that was pruned) resumes from the URI,
finalizes on s3 with no ERROR trial and reaches the uninterrupted choice; ``report``,
``predict`` and ``hr.load`` read the URI; a campaign runs on s3; bad storage is one line before Ray starts.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from tests.faults import SETTINGS, decisions, sigkill_when
from tests.spawn import die_with_pytest

pytestmark = pytest.mark.slow
BUCKET = "sweeps"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on a free loopback port with one bucket; the environment a user would set."""
    pytest.importorskip("moto")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                  preexec_fn=die_with_pytest)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "PYTHONWARNINGS": "ignore"}
    env.pop("AWS_ENDPOINT_URL", None)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "moto's server did not come up in 60 s"
                time.sleep(0.2)
        import boto3

        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
        yield {"port": port, "env": env, "query": f"endpoint_override=127.0.0.1:{port}&scheme=http"}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def uri(s3: dict, path: str) -> str:
    """A URI as pyarrow spells an endpoint: in its query, after the path."""
    return f"s3://{BUCKET}/{path}?{s3['query']}"


def cli(s3: dict, *args: str, cwd: Path, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hindsight_ray", *args], cwd=cwd, env=env or s3["env"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=die_with_pytest, **kwargs)


def run(s3: dict, *args: str, cwd: Path, env: dict | None = None, timeout: float = 600) -> tuple[int, str]:
    process = cli(s3, *args, cwd=cwd, env=env)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # a hang: stop it (its Ray with it) and show what it printed
        process.kill()
        output, _ = process.communicate()
        return -9, f"(killed after {timeout:.0f} s)\n{output}"
    return process.returncode, output


def filesystem(s3: dict):
    import pyarrow.fs as pafs

    return pafs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1",
                             endpoint_override=f"127.0.0.1:{s3['port']}", scheme="http")


def read_s3(s3: dict, path: str) -> bytes:
    with filesystem(s3).open_input_stream(f"{BUCKET}/{path}") as handle:
        return handle.read()


def read_s3_table(s3: dict, path: str) -> pd.DataFrame:
    """A parquet table on s3, read from Arrow's memory (see ``ExperimentStore.read_table``)."""
    with filesystem(s3).open_input_stream(f"{BUCKET}/{path}") as handle:
        return pd.read_parquet(pa.BufferReader(handle.read_buffer()))


def s3_decisions(s3: dict, experiment: str, tmp_path: Path) -> dict:
    local = tmp_path / f"summary-of-{experiment.replace('/', '-')}"
    local.mkdir()
    (local / "summary.json").write_bytes(read_s3(s3, f"{experiment}/summary.json"))
    return decisions(local)


def sweep_args(s3: dict, prefix: str, name: str) -> list[str]:
    return ["sweep", "--storage", uri(s3, prefix), "--name", name, "--no-report",
            *[f"--set={s}" for s in [*SETTINGS, "run.keep_checkpoints=1"]]]


@pytest.fixture(scope="module")
def finished(s3, tmp_path_factory):
    """A sweep on s3 SIGKILLed (its whole session) in stage 1 once Ray's uploaded snapshot names a stage-1
    checkpoint, that checkpoint then pruned (what a driver killed between Ray's pruning and its next upload
    leaves), and resumed from the URI to its end: what every test here reads."""
    import pyarrow.fs as pafs

    from hindsight_ray.core.location import ExperimentLocation
    from hindsight_ray.running.checkpoint_repair import _trials

    tmp_path = tmp_path_factory.mktemp("s3-killed")
    fs, experiment = filesystem(s3), "team/runs/killed"
    location = ExperimentLocation(f"{BUCKET}/{experiment}", "s3", s3["query"], fs)

    def stage1_checkpointed() -> bool:
        """The uploaded snapshot names a stage-1 checkpoint that is there (so one can be pruned below)."""
        try:
            return any(recorded and "stage=1" in recorded and fs.get_file_info(recorded).type != pafs.FileType.NotFound
                       for _, recorded in _trials(location))
        except (OSError, ValueError):
            return False

    sigkill_when(cli(s3, *sweep_args(s3, "team/runs", "killed"), cwd=tmp_path, start_new_session=True),
                 stage1_checkpointed)
    pruned = _prune_one_recorded_checkpoint(s3, experiment)
    assert pruned is not None
    code, output = run(s3, "resume", uri(s3, experiment), cwd=tmp_path)
    assert code == 0, output[-3000:]
    return {"experiment": experiment, "decisions": s3_decisions(s3, experiment, tmp_path), "output": output,
            "pruned": pruned}


def test_sigkill_in_stage1_then_resume_from_the_uri_repairs_and_decides_as_uninterrupted(s3, finished, reference):
    """The resume names the checkpoint it repaired, leaves no ERROR trial, and reaches the decisions of the
    same sweep run uninterrupted on local storage."""
    assert "repaired" in finished["output"] and Path(finished["pruned"]).name in finished["output"], finished["output"][-3000:]
    trials = read_s3_table(s3, f"{finished['experiment']}/trials.parquet")
    assert "ERROR" not in set(trials.status), trials[["trial_id", "status"]]
    assert finished["decisions"] == reference


def test_a_sweep_on_s3_finalizes_there(s3, finished):
    import pyarrow.fs as pafs

    names = {Path(i.path).name for i in filesystem(s3).get_file_info(
        pafs.FileSelector(f"{BUCKET}/{finished['experiment']}"))}
    assert {"trials.parquet", "epochs.parquet", "summary.json", "best_model.keras", "config.json"} <= names
    summary = json.loads(read_s3(s3, f"{finished['experiment']}/summary.json"))
    assert summary["experiment_dir"] == uri(s3, finished["experiment"])  # the name in the path, the query last
    trials = read_s3_table(s3, f"{finished['experiment']}/trials.parquet")
    assert len(trials) == 7 and set(trials.status) == {"TERMINATED"}
    assert trials.checkpoint_path.str.startswith(f"{BUCKET}/{finished['experiment']}/").all()


def test_report_predict_and_load_read_the_uri(s3, finished, tmp_path):
    experiment = uri(s3, finished["experiment"])
    code, output = run(s3, "report", experiment, cwd=tmp_path)
    assert code == 0 and f"report: s3://{BUCKET}/{finished['experiment']}/report.md" in output, output[-2000:]
    assert read_s3(s3, f"{finished['experiment']}/report.md").startswith(b"#")

    out = tmp_path / "forecast.csv"
    code, output = run(s3, "predict", experiment, "--data", str(Path(__file__).resolve().parents[1] / "hindsight_ray/data/builtin/airline.csv"), "--out", str(out),
                       cwd=tmp_path)
    assert code == 0, output[-2000:]
    assert len(pd.read_csv(out)) > 100
    probe = (f"import hindsight_ray as hr; r = hr.load({experiment!r}); "
             "print(r.experiment_dir, len(r.trials), r.best['trial_id'])")
    result = subprocess.run([sys.executable, "-c", probe], env=s3["env"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(read_s3(s3, f"{finished['experiment']}/summary.json"))
    assert result.stdout.split() == [experiment, "7", summary["best"]["trial_id"]]


def _prune_one_recorded_checkpoint(s3: dict, experiment: str) -> str | None:
    """What a driver killed between Ray's pruning and its next snapshot upload leaves: the checkpoint the
    snapshot names is gone, a newer one of the same trial is there. Made so for one running trial."""
    import pyarrow.fs as pafs

    from hindsight_ray.core.location import ExperimentLocation
    from hindsight_ray.running.checkpoint_repair import _trials, checkpoint_index

    fs = filesystem(s3)
    location = ExperimentLocation(f"{BUCKET}/{experiment}", "s3", s3["query"], fs)
    for _trial_dir, recorded in _trials(location):
        if recorded is None or fs.get_file_info(recorded).type == pafs.FileType.NotFound:
            continue
        newer = f"{recorded.rsplit('_', 1)[0]}_{checkpoint_index(recorded) + 1:06d}"
        if fs.get_file_info(newer).type != pafs.FileType.NotFound:
            fs.delete_dir(newer)
        pafs.copy_files(recorded, newer, source_filesystem=fs, destination_filesystem=fs)
        fs.delete_dir(recorded)
        return recorded
    return None


def test_a_campaign_runs_on_s3(s3, tmp_path):
    import yaml

    campaign = {
        "name": "tiny", "storage": uri(s3, "campaigns"),
        "base": {"data": {"lags": 6}, "resources": {"max_concurrent": 1},
                 "search": {"stage1": {"layers": [1], "units": [4], "epochs": 2},
                            "stage2": {"max_iterations": 1, "epochs": 3}}},
        "strategies": ["two_stage"], "datasets": {"airline": {"data.source": "builtin:airline"}},
        "seeds": [0], "budget": "two_stage",
    }
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(campaign))
    code, output = run(s3, "campaign", str(path), cwd=tmp_path)
    assert code == 0, output[-3000:]
    table = read_s3_table(s3, "campaigns/tiny/campaign.parquet")
    assert list(table.strategy) == ["two_stage"]
    assert table.experiment.str.startswith(f"s3://{BUCKET}/campaigns/").all()
    assert table.experiment.str.endswith(f"?{s3['query']}").all()


@pytest.mark.parametrize(("case", "message"), [
    ("no-bucket", "bucket missing-bucket does not exist"),
    ("no-credentials", "no AWS credentials found"),
    ("no-endpoint", "nothing answers at the S3 endpoint 127.0.0.1:"),
])
@pytest.mark.parametrize("dry_run", [False, True], ids=["sweep", "dry-run"])
def test_bad_s3_storage_is_one_line_before_ray_starts(s3, tmp_path, case, message, dry_run):
    env, storage = dict(s3["env"]), uri(s3, "x")
    if case == "no-bucket":
        storage = f"s3://missing-bucket/x?{s3['query']}"
    elif case == "no-credentials":
        env = {k: v for k, v in env.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")}
        env["HOME"] = str(tmp_path)  # no ~/.aws/credentials either
    else:
        storage = f"s3://{BUCKET}/x?endpoint_override=127.0.0.1:{free_port()}&scheme=http"
    began = time.monotonic()
    code, output = run(s3, "sweep", "--storage", storage, *(["--dry-run"] if dry_run else []), cwd=tmp_path, env=env,
                       timeout=60)
    assert time.monotonic() - began < 30
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], output
