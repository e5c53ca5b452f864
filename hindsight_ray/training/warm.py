"""The driver's own Keras backend, imported in the background while the trials run, for the test evaluation."""

from __future__ import annotations

import os
import threading

from hindsight_ray.training import backend
from hindsight_ray.training.backend import DEFAULT as DEFAULT_BACKEND

# this process's one background import of Keras' backend, once started
_warming: list[threading.Thread] = []


def warm_backend(name: str = DEFAULT_BACKEND) -> None:
    """Import Keras on backend ``name`` into this process in the background, at the lowest CPU priority,
    while the trials run (from the first trial result: the import holds the GIL for seconds, and takes CPU
    the first workers' own imports need): the best model's test evaluation then runs here at once, instead
    of in a new Ray worker that starts and imports its framework again (about 5 s of every local sweep).
    This process's framework takes GPU memory only as it needs it (the trials' stays theirs). Started once;
    ``join_warming`` before the process exits. Nothing happens when Keras runs on another backend here."""
    if _warming or backend.running() not in (None, name):
        return
    backend.use_trial_numerics()

    def work() -> None:
        try:
            # this thread only (Linux)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass
        try:
            # all this machine's cores, as the evaluation had before there was a backend module
            backend.configure(name, os.cpu_count() or 1, deterministic=False)
        except Exception:  # noqa: BLE001 - initialised already, or absent: the evaluation says so
            pass

    thread = threading.Thread(target=work, name=f"hindsight-import-{name}", daemon=True)
    thread.start()
    _warming.append(thread)


def join_warming() -> None:
    """Wait for the background import of Keras' backend, if one started (never exit while it runs)."""
    for thread in _warming:
        thread.join()
