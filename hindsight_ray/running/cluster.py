"""Start or join Ray, and check what a sweep asks of it against the live nodes: memory, CPUs and GPUs per
trial, shared storage across machines, and how many trials fit at once."""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hindsight_ray.config.schema import SweepConfig
from hindsight_ray.core.errors import UserError
from hindsight_ray.core.experiment import is_uri
from hindsight_ray.training.backend import worker_env


def ray_address(config: SweepConfig) -> str | None:
    """The cluster a sweep joins: ``resources.address``, else ``RAY_ADDRESS`` (set by ``ray job submit`` for the
    job's driver, or by the user); None starts a local Ray."""
    return config.resources.address or os.environ.get("RAY_ADDRESS") or None


def start_ray(config: SweepConfig) -> bool:
    """Connect to (or start) Ray; True when this call started it and so must shut it down."""
    address = ray_address(config)
    found_token = False
    if address:
        # before Ray's import and its minutes of retries
        check_reachable(address)
        found_token = use_found_token()
    import ray

    if ray.is_initialized():
        return False
    # Ray announces on every start that it turned token authentication on; we keep it on, quietly
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    options: dict[str, Any] = {
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        "runtime_env": {"env_vars": worker_env(config.model.backend)},
    }
    if address:
        options["address"] = address
    else:
        # no idle workers prestarted for this driver: a trial's worker is started for it (with the sweep's
        # environment), and the prestarted ones only took CPU from it while they started (~0.3 s of a sweep)
        options.update(
            include_dashboard=False,
            dashboard_host="127.0.0.1",
            _system_config={"prestart_worker_first_driver": False},
        )
    import signal

    from hindsight_ray.running.lock_and_signals import Stopped, keep_our_sigterm

    previous = signal.getsignal(signal.SIGTERM)
    try:
        if address:
            _init(ray, options, retries=2 if address.startswith("ray://") else 0)
        else:
            with _agent_on_a_free_port(ray):
                _init(ray, options, retries=0)
    except SystemExit as exc:
        # SIGTERM while Ray started: Ray's handler exits with 15
        if exc.code == signal.SIGTERM:
            raise Stopped(int(signal.SIGTERM)) from None
        raise
    except (ConnectionError, RuntimeError) as exc:
        if found_token:
            # a cluster without authentication: try once more without the token
            _auth_mode(None)
            try:
                ray.init(**options)
                return True
            except (ConnectionError, RuntimeError):
                pass
        detail = (
            " ".join(line.strip() for line in str(exc).strip().splitlines()[:2])
            or type(exc).__name__
        )
        raise UserError(
            f"resources.address {address}: cannot connect to Ray ({detail[:200]})"
        ) from None
    finally:
        keep_our_sigterm(previous)
    return True


@contextmanager
def _agent_on_a_free_port(ray: Any) -> Iterator[None]:
    """While a local Ray starts: its dashboard agent listens on a port found free, not on Ray's fixed 52365.
    Where another Ray on this machine holds 52365 (a notebook's, another sweep's, a CI job's beside this
    one), the agent otherwise tries it six times over about 3 s before the node comes up. ``ray.init``
    has no option for it: the node's parameters get it as their default while ``ray.init`` runs."""
    module: Any = getattr(getattr(ray, "_private", None), "parameter", None)
    original = getattr(module, "RayParams", None)
    if original is None:  # another Ray's internals: its own default
        yield
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])

    class Params(original):  # type: ignore[misc, valid-type]
        def __init__(
            self, *args: Any, dashboard_agent_listen_port: int | None = None, **kwargs: Any
        ) -> None:
            super().__init__(
                *args, dashboard_agent_listen_port=dashboard_agent_listen_port or port, **kwargs
            )

    module.RayParams = Params
    try:
        yield
    finally:
        module.RayParams = original


def _init(ray: Any, options: dict[str, Any], retries: int) -> None:
    """``ray.init``; over Ray Client, tried again when the server failed to start this client's session (its
    per-client server can be slow to come up on a loaded head)."""
    import time

    for attempt in range(retries + 1):
        try:
            ray.init(**options)
            return
        except ConnectionAbortedError as exc:
            if attempt == retries or "Initialization failure from server" not in str(exc):
                raise
            # the half-made client connection, before the next try
            ray.shutdown()
            time.sleep(2.0 * (attempt + 1))


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """A head that does not answer is a one-line error within ``timeout`` seconds, not minutes of Ray's
    retries. (``auto`` and ``local`` name no host.)"""
    if address in ("auto", "local"):
        return
    client = address.startswith("ray://")
    target = address.removeprefix("ray://")
    host, _, port = (
        target.rpartition(":") if not target.endswith("]") and ":" in target else (target, "", "")
    )
    host = host.strip("[]")
    # ray:// without a port: the Ray Client's default
    port_number = int(port) if port else 10001
    try:
        socket.create_connection((host, port_number), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(
            f"resources.address {address}: nothing answers at {host}:{port_number} ({reason}); is the "
            f"{'Ray Client server' if client else 'Ray head'} running there, and the port open?"
        ) from None


def use_found_token() -> bool:
    """``ray start --head`` turns token authentication on, and a client needs ``RAY_AUTH_MODE=token`` to send
    its token: set it when the user has a token (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
    ``~/.ray/auth_token``) and has not chosen a mode. True when this call set it."""
    if os.environ.get("RAY_AUTH_MODE"):
        return False
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token").expanduser()
    if not (os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file()):
        return False
    _auth_mode("token")
    return True


def _auth_mode(mode: str | None) -> None:
    """Set (or unset) ``RAY_AUTH_MODE``. Ray caches its config when it is imported, so a process that
    imported Ray already (a notebook) has that cache reloaded too, as Ray itself does when it turns
    token authentication on."""
    if mode is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = mode
    if "ray" in sys.modules:
        try:
            from ray._raylet import Config  # type: ignore[attr-defined]

            Config.initialize("")
        except (ImportError, AttributeError):
            # another Ray version: the variable alone must do
            pass


@contextmanager
def ray_session(config: SweepConfig) -> Iterator[None]:
    """Ray connected (or started) for the block; shut down after it only if this call started it."""
    owns_ray = start_ray(config)
    try:
        yield
    finally:
        if owns_ray:
            import ray

            ray.shutdown()


# The command sets this (``hindsight-ray ...``): when the local Ray it started dies, the process ends at
# once with one line. From Python (a notebook) the line is printed and Ray's own errors follow.
EXIT_WHEN_RAY_DIES = False
RAY_CORE = {"gcs_server": "GCS server", "raylet": "raylet"}


def _started_ray_processes() -> list[tuple[str, Any]]:
    """(kind, ``Popen``) of every Ray process this process started (none when it joined a cluster)."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    if node is None:
        return []
    return [(kind, info.process) for kind, infos in node.all_processes.items() for info in infos]


@contextmanager
def local_ray_watch(experiment_dir: str, every: float = 0.5) -> Iterator[None]:
    """While the block runs, watch the GCS server and raylet of the local Ray this process started: if
    one dies (killed, out of memory), say so in one line with the resume command, instead of Ray's
    dozens of lines of logs or a minute of silence while it waits for a GCS that is gone. Under the
    command the process then ends at once (exit 1), after stopping the rest of the Ray it started;
    what Ray saved is kept, and ``resume`` goes on from it."""
    processes = _started_ray_processes()
    core = [(kind, process) for kind, process in processes if kind in RAY_CORE]
    if not core:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(every):
            dead = [(kind, process) for kind, process in core if process.poll() is not None]
            if dead and not done.is_set():
                kind, process = dead[0]
                _ray_died(f"its {RAY_CORE[kind]}, pid {process.pid}, exited with {process.returncode}", experiment_dir,
                          processes)  # fmt: skip
                return

    thread = threading.Thread(target=watch, name="hindsight-ray-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(every * 4)


def _ray_died(why: str, experiment_dir: str, processes: list[tuple[str, Any]]) -> None:
    line = (
        f"error: the local Ray stopped ({why}); the trials finished so far and their checkpoints are kept: "
        f"resume with  hindsight-ray resume {experiment_dir}\n"
    )
    if not EXIT_WHEN_RAY_DIES:
        sys.stderr.write(line)
        sys.stderr.flush()
        return
    # the command's last words: nothing the other threads (the console, Ray's logs) print from here on
    sys.stdout.flush()
    sys.stderr.flush()
    # the real stderr (the command keeps it apart from native fd 2)
    console = os.dup(sys.stderr.fileno())
    silent = os.open(os.devnull, os.O_WRONLY)
    for fd in {sys.stdout.fileno(), sys.stderr.fileno(), 2}:
        os.dup2(silent, fd)
    # before any dies: a dead parent's children are no longer below us
    below = _descendants(os.getpid())
    for _, process in processes:
        # the Ray processes this one started, by their handles
        if process.poll() is None:
            process.kill()
    for pid in below:
        # and theirs: trial workers, Ray's agents (the command is ending)
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    os.write(console, line.encode())
    os._exit(1)


def _descendants(root: int) -> list[int]:
    """Every process below ``root`` (children, their children, ...), read from /proc; [] elsewhere."""
    children: dict[int, list[int]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, queue = [], [root]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def check_resources(config: SweepConfig, storage: str) -> int:
    """Storage and resource checks against the live nodes; the number of trial slots."""
    nodes = live_nodes()
    check_cluster(config, storage, nodes)
    return trial_slots(config, nodes)


NETWORK_FILESYSTEMS = (
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "lustre",
    "gpfs",
    "beegfs",
    "ceph",
    "glusterfs",
    "9p",
    "fuse.s3fs",
    "fuse.gcsfuse",
    "fuse.juicefs",
    "fuse.sshfs",
    "fuse.ceph-fuse",
    "efs",
)


def filesystem_type(path: str) -> str:
    """The type of the mounted filesystem holding ``path`` (from /proc/mounts), or "" when unknown."""
    target = Path(path).resolve()
    while not target.exists() and target != target.parent:
        target = target.parent
    best, kind = "", ""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    for line in mounts:
        fields = line.split()
        if (
            len(fields) >= 3
            and (str(target) + "/").startswith(fields[1].rstrip("/") + "/")
            and len(fields[1]) > len(best)
        ):
            best, kind = fields[1], fields[2]
    return kind


def machine_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _gb(size: float) -> str:
    return f"{size / 1e9:,.1f} GB" if size < 1e12 else f"{size / 1e12:,.1f} TB"


def check_memory(config: SweepConfig, available: float, where: str) -> None:
    """Refuse a search space whose largest model cannot train in ``available`` bytes, before any data is
    prepared or trial started (instead of out-of-memory retries)."""
    from hindsight_ray.training.model import largest_trial_bytes

    needed = largest_trial_bytes(config)
    if needed > available:
        stage1 = config.search.stage1
        raise UserError(
            f"the largest model (layers {max(stage1.layers)} x units {max(stage1.units)}, batch "
            f"{config.model.batch_size}, sequence {config.data.max_length if config.data.kind == 'text' else config.data.lags}"
            f"{f', vocabulary {config.data.num_words:,}' if config.data.kind == 'text' else ''}) needs about "
            f"{_gb(needed)} to train, more than {where}'s {_gb(available)}; lower search.stage1.units, "
            "data.max_length, data.num_words or model.batch_size"
        )


# a process that has imported TensorFlow and trained a small LSTM: 0.72 GB max RSS
WORKER_BYTES = 700_000_000


def check_workers_memory(
    config: SweepConfig, trials: int, memory: float, where: str = "a node"
) -> None:
    """Refuse packing more trials on one node than its memory holds: each runs in its own Ray worker, a
    process with TensorFlow in it (:data:`WORKER_BYTES`) besides its model's own memory."""
    from hindsight_ray.training.model import largest_trial_bytes

    each = WORKER_BYTES + largest_trial_bytes(config)
    if not memory or trials * each <= memory:
        return
    fits = max(1, int(memory // each))
    raise UserError(
        f"resources.cpus_per_trial {config.resources.cpus_per_trial:g} puts up to {trials} trials at once on {where} "
        f"with {_gb(memory)}; each trial's worker needs about {_gb(each)} (TensorFlow and the "
        f"model), {_gb(trials * each)} in all: raise resources.cpus_per_trial or set resources.max_concurrent "
        f"to {fits} or fewer"
    )


def local_trials(config: SweepConfig) -> int:
    """How many trials a local Ray started here runs at once (all this machine's CPUs are Ray's)."""
    res = config.resources
    fit = math.floor((os.cpu_count() or 1) / res.cpus_per_trial + 1e-9)
    return max(1, min(fit, res.max_concurrent or fit))


def live_nodes() -> list[dict[str, Any]]:
    """The alive nodes of the connected Ray cluster, as ``ray.nodes()`` describes them."""
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


def check_cluster(
    config: SweepConfig, storage: str, nodes: list[dict[str, Any]] | None = None
) -> None:
    """Refuse a search space no node has the memory for, and a local-only storage path when trials may run
    on other machines. ``nodes``: as :func:`live_nodes` gives them (the default)."""
    nodes = live_nodes() if nodes is None else nodes
    memory = max((n["Resources"].get("memory", 0) for n in nodes), default=0)
    if memory:
        check_memory(config, memory, "the largest node")
    hosts = {n["NodeManagerAddress"] for n in nodes}
    if (
        len(hosts) > 1
        and not is_uri(storage)
        and filesystem_type(storage) not in NETWORK_FILESYSTEMS
    ):
        raise UserError(
            f"storage {storage} is on this machine's own disk, but the cluster has {len(hosts)} machines: "
            "use shared storage every node mounts (an NFS path) or a pyarrow URI such as s3://bucket/prefix"
        )


def trial_slots(config: SweepConfig, nodes: list[dict[str, Any]] | None = None) -> int:
    """How many trials fit at once on the live nodes (``nodes``: as :func:`live_nodes` gives them, the
    default); impossible requests are errors.

    With ``resources.wait_for_autoscaler`` a request no live node can meet is allowed to wait for
    nodes an autoscaler may add (one slot is planned until they come).
    """
    res = config.resources
    nodes = [n["Resources"] for n in (live_nodes() if nodes is None else nodes)]
    most_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
    most_gpus = max((n.get("GPU", 0) for n in nodes), default=0)
    problem = None
    if res.cpus_per_trial > most_cpus:
        problem = f"resources.cpus_per_trial {res.cpus_per_trial:g} is more than any node has (largest: {most_cpus:g} CPUs)"
    elif res.gpus_per_trial > 0 and most_gpus == 0:
        problem = f"resources.gpus_per_trial {res.gpus_per_trial:g} asks for GPUs, but the cluster has none"
    elif res.gpus_per_trial > most_gpus:
        problem = (
            f"resources.gpus_per_trial {res.gpus_per_trial:g} is more GPUs than any node has "
            f"(largest: {most_gpus:g} GPUs)"
        )
    if problem and not res.wait_for_autoscaler:
        raise UserError(
            problem
            + "; set resources.wait_for_autoscaler: true if an autoscaler will add such nodes"
        )
    slots = 0
    for node in nodes:
        fit = math.floor(node.get("CPU", 0) / res.cpus_per_trial + 1e-9)
        if res.gpus_per_trial > 0:
            fit = min(fit, math.floor(node.get("GPU", 0) / res.gpus_per_trial + 1e-9))
        check_workers_memory(config, min(fit, res.max_concurrent or fit), node.get("memory", 0))
        slots += fit
    if res.max_concurrent:
        return res.max_concurrent
    return max(1, slots)
