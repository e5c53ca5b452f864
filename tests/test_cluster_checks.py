"""What a sweep asks of the cluster, checked against fake nodes: slots, impossible requests, memory, and
storage other machines cannot see. (tests/test_cluster.py runs the same checks on live Ray clusters.)"""

from __future__ import annotations

import pytest

from hindsight_ray.config.schema import load_config
from hindsight_ray.core.errors import UserError
from hindsight_ray.running.cluster import (
    check_cluster,
    check_resources,
    filesystem_type,
    trial_slots,
)
from hindsight_ray.running.plan import make_plan
from tests.fakes import node


def test_slots_count_what_fits_on_every_node():
    nodes = [node(cpus=8, gpus=2), node(cpus=8, gpus=2, host="10.0.0.2"), node(cpus=4, host="10.0.0.3")]
    assert trial_slots(load_config(None, ["resources.gpus_per_trial=0.5"]), nodes) == 8  # 4 per GPU node
    assert trial_slots(load_config(None, ["resources.cpus_per_trial=3"]), nodes) == 2 + 2 + 1
    assert trial_slots(load_config(None, ["resources.max_concurrent=3"]), nodes) == 3
    assert trial_slots(load_config(None, []), [node(cpus=2)]) == 2


@pytest.mark.parametrize(("setting", "nodes", "message"), [
    ("resources.gpus_per_trial=1", [node(cpus=2)], "asks for GPUs, but the cluster has none"),
    ("resources.gpus_per_trial=4", [node(cpus=8, gpus=2)], "is more GPUs than any node has (largest: 2 GPUs)"),
    ("resources.cpus_per_trial=64", [node(cpus=8), node(cpus=16)], "is more than any node has (largest: 16 CPUs)"),
])
def test_impossible_requests_are_one_line_errors(setting, nodes, message):
    with pytest.raises(UserError) as error:
        trial_slots(load_config(None, [setting]), nodes)
    assert message in str(error.value) and "wait_for_autoscaler" in str(error.value)
    waiting = load_config(None, [setting, "resources.wait_for_autoscaler=true"])
    assert trial_slots(waiting, nodes) >= 1  # allowed to wait for an autoscaler's bigger nodes


def test_a_model_too_big_for_the_largest_node_is_refused(tmp_path):
    config = load_config(None, ["search.stage1.units=[4096]", "search.stage1.layers=[8]", "model.batch_size=4096",
                                "data.lags=500", f"storage={tmp_path}"])
    with pytest.raises(UserError, match="more than the largest node's"):
        check_cluster(config, make_plan(config).storage, [node(memory=2e9), node(memory=1e9, host="10.0.0.2")])


def test_local_disk_storage_is_refused_when_nodes_are_on_other_machines(tmp_path):
    nodes = [node(cpus=4, host=ip) for ip in ("10.0.0.1", "10.0.0.2")]
    config = load_config(None, [f"storage={tmp_path}"])
    if filesystem_type(str(tmp_path)) in ("nfs", "nfs4"):
        pytest.skip("the test folder is on NFS")
    with pytest.raises(UserError, match="use shared storage"):
        check_cluster(config, make_plan(config).storage, nodes)
    check_cluster(config, make_plan(config).storage, nodes[:1])  # one machine: its own disk is fine
    uri = load_config(None, ["storage=s3://bucket/prefix"])
    check_cluster(uri, make_plan(uri).storage, nodes)  # URIs are shared by definition


def test_check_resources_asks_ray_once_for_the_nodes(monkeypatch, tmp_path):
    import hindsight_ray.running.cluster as cluster

    calls = []
    monkeypatch.setattr(cluster, "live_nodes", lambda: calls.append(1) or [node(cpus=6)])
    config = load_config(None, [f"storage={tmp_path}", "resources.cpus_per_trial=2"])
    assert check_resources(config, make_plan(config).storage) == 3 and calls == [1]


def test_an_address_nobody_answers_is_one_line_error_at_once():
    import socket

    from hindsight_ray.running.cluster import check_reachable

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        check_reachable(f"127.0.0.1:{port}")  # something answers
    with pytest.raises(UserError, match=rf"nothing answers at 127.0.0.1:{port} \(Connection refused\); is the Ray head"):
        check_reachable(f"127.0.0.1:{port}")
    check_reachable("auto")


def test_ray_client_without_a_port_tries_its_default_port(monkeypatch):
    """Whether something listens on 10001 here is not the test's to assume: the connection is faked."""
    import socket

    from hindsight_ray.running.cluster import check_reachable

    tried = []

    def refused(address, timeout=None):
        tried.append(address)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refused)
    with pytest.raises(UserError, match="nothing answers at 127.0.0.1:10001 .*Ray Client server"):
        check_reachable("ray://127.0.0.1")
    assert tried == [("127.0.0.1", 10001)]


def test_a_token_the_user_has_turns_token_authentication_on(monkeypatch, tmp_path):
    import os

    from hindsight_ray.running.cluster import use_found_token

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert not use_found_token() and "RAY_AUTH_MODE" not in os.environ  # no token: no authentication
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("secret")
    assert use_found_token() and os.environ["RAY_AUTH_MODE"] == "token"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert not use_found_token() and os.environ["RAY_AUTH_MODE"] == "disabled"  # the user's choice stands


def test_many_tiny_trials_on_one_node_are_refused_by_their_workers_memory(tmp_path):
    config = load_config(None, [f"storage={tmp_path}", "resources.cpus_per_trial=0.01"])
    with pytest.raises(UserError, match=r"puts up to 200 trials at once on a node with 16.0 GB; .* "
                                        r"set resources.max_concurrent to 2\d or fewer"):
        trial_slots(config, [node(cpus=2, memory=16e9)])
    capped = load_config(None, [f"storage={tmp_path}", "resources.cpus_per_trial=0.01", "resources.max_concurrent=8"])
    assert trial_slots(capped, [node(cpus=2, memory=16e9)]) == 8  # a cap the memory holds is fine
    assert trial_slots(load_config(None, [f"storage={tmp_path}"]), [node(cpus=2, memory=16e9)]) == 2
