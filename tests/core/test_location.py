"""The experiment location: parsed once, the name joined into the path before a URI's query."""

from __future__ import annotations

import pytest

from hindsight_ray.core.errors import UserError
from hindsight_ray.core.location import ExperimentLocation


def test_a_local_path_is_absolute_and_joins_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    location = ExperimentLocation.parse("results").join("sweep-1")
    assert location.local and location.path == f"{tmp_path}/results/sweep-1" and location.uri == location.path
    assert location.name == "sweep-1" and location.parent.path == f"{tmp_path}/results"


def test_a_file_uri_is_a_local_folder(tmp_path):
    location = ExperimentLocation.parse(f"file://{tmp_path}/exp")
    assert location.local and location.uri == f"{tmp_path}/exp"


def test_an_s3_query_stays_after_the_joined_name():
    location = ExperimentLocation.parse("s3://bucket/prefix/?endpoint_override=127.0.0.1:5077&scheme=http")
    experiment = location.join("airline-two_stage")
    assert experiment.path == "bucket/prefix/airline-two_stage"
    assert experiment.uri == "s3://bucket/prefix/airline-two_stage?endpoint_override=127.0.0.1:5077&scheme=http"
    assert experiment.fs.type_name == "s3" and not experiment.local
    again = ExperimentLocation.parse(experiment.uri)  # what a person types to resume names the same folder
    assert (again.path, again.uri) == (experiment.path, experiment.uri)
    assert experiment.join("summary.json").uri.startswith("s3://bucket/prefix/airline-two_stage/summary.json?")


def test_a_uri_pyarrow_cannot_open_is_one_line():
    with pytest.raises(UserError, match=r"^storage nosuch://x/y: not a location pyarrow can open \("):
        ExperimentLocation.parse("nosuch://x/y")


@pytest.mark.parametrize(("env", "query", "message"), [
    ({}, "endpoint_override=127.0.0.1:1&scheme=http", "nothing answers at the S3 endpoint 127.0.0.1:1"),
    ({"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, "", "nothing answers at the S3 endpoint 127.0.0.1:1"),
])
def test_an_endpoint_nothing_answers_at_is_refused_at_once(monkeypatch, env, query, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    location = ExperimentLocation.parse(f"s3://bucket/prefix{'?' + query if query else ''}")
    with pytest.raises(UserError, match=message):
        location.check_reachable(timeout=2)


def test_no_credentials_for_a_custom_endpoint_is_refused(monkeypatch, tmp_path):
    import socket

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with socket.socket() as server:  # something answers, so the credentials are what is checked
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        location = ExperimentLocation.parse(f"s3://bucket/p?endpoint_override=127.0.0.1:{port}&scheme=http")
        with pytest.raises(UserError, match="no AWS credentials found"):
            location.check_reachable()


def test_object_store_filesystems_are_freed_before_pyarrow_finalizes_s3_at_exit():
    """pyarrow shuts S3 down at exit (an atexit handler from ``import pyarrow.fs``); an S3 filesystem alive then
    aborted ``hr.load(s3 URI)`` now and again (exit 134). A handler registered where pyarrow's is sees none held."""
    import subprocess
    import sys

    script = (
        "import atexit, pyarrow.fs\n"
        "from hindsight_ray.core.location import ExperimentLocation\n"
        "held = []\n"
        "atexit.register(lambda: print('held at pyarrow finalize:', [l.filesystem is not None for l in held]))\n"
        "base = ExperimentLocation.parse('s3://bucket/p?endpoint_override=127.0.0.1:5077&scheme=http&region=us-east-1')\n"
        "held += [base, base.join('exp'), base.join('exp').parent]\n"
        "print([l.fs.type_name for l in held])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == ["['s3', 's3', 's3']", "held at pyarrow finalize: [False, False, False]"]
