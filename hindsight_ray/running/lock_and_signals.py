"""An experiment folder is safe: one driver at a time (a lock file), and interruptions (Ctrl-C, SIGTERM)
that stop Tune gracefully and finalize nothing, so that ``resume`` finishes the sweep."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hindsight_ray.core.errors import UserError
from hindsight_ray.core.layout import LOCK_FILE


class Interrupted(Exception):
    """The sweep was stopped by a signal before its search finished; nothing was finalized."""

    def __init__(self, signum: int, experiment_dir: str) -> None:
        self.signum = signum
        # the shell's convention: 130 for SIGINT, 143 for SIGTERM
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        super().__init__(
            f"interrupted ({name}); nothing was finalized. Finish the sweep with: hindsight-ray resume {experiment_dir}"
        )


class Watch:
    """What :func:`interruptions` saw: the first signal that asked the sweep to stop, if any."""

    def __init__(self, experiment_dir: str, tune_here: bool = True) -> None:
        self.experiment_dir = experiment_dir
        self.signals: list[int] = []
        # our SIGINT handler, to recognise it once Tune hands it back
        self.ours: Any = None
        # False over Ray Client: Tune then runs on the head and never takes SIGINT here
        self.tune_here = tune_here

    def stopped_by(self) -> int | None:
        if self.signals:
            return self.signals[0]
        tune_handles_sigint = self.tune_here and os.environ.get(
            "TUNE_DISABLE_SIGINT_HANDLER", "0"
        ) in ("", "0")
        if (
            self.ours is not None
            and tune_handles_sigint
            and signal.getsignal(signal.SIGINT) is self.ours
        ):
            # Tune's handler ran (it puts back the handler it found: ours)
            return int(signal.SIGINT)
        return None

    def raise_if_stopped(self) -> None:
        signum = self.stopped_by()
        if signum is not None:
            raise Interrupted(signum, self.experiment_dir)


@contextmanager
def interruptions(experiment_dir: str, tune_here: bool = True) -> Iterator[Watch]:
    """Run ``Tuner.fit`` under this, then call ``raise_if_stopped()`` before finalizing anything.

    Tune catches the first Ctrl-C itself: it stops the trials, saves the experiment and returns from
    ``fit`` normally, then puts back the SIGINT handler it found (ours: that is how we know). SIGTERM
    is turned into the same graceful stop. A second Ctrl-C, or one outside ``fit``, ends at once; all
    of these surface as :class:`Interrupted` (exit 130 or 143), and ``resume`` continues the sweep.
    """
    watch = Watch(experiment_dir, tune_here)
    if threading.current_thread() is not threading.main_thread():
        # signals reach only the main thread; nothing to catch here
        yield watch
        return

    def on_interrupt(signum: int, frame: Any) -> None:
        watch.signals.append(signum)
        raise KeyboardInterrupt

    def on_terminate(signum: int, frame: Any) -> None:
        watch.signals.append(signum)
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler) and handler is not on_interrupt:
            # Tune's own: stop the trials, save, return from fit
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    watch.ours = on_interrupt
    signal.signal(signal.SIGINT, on_interrupt)
    signal.signal(signal.SIGTERM, on_terminate)
    try:
        yield watch
    except KeyboardInterrupt:
        raise Interrupted(
            watch.signals[0] if watch.signals else int(signal.SIGINT), experiment_dir
        ) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def running(experiment_dir: str) -> Iterator[None]:
    """A stop (Ctrl-C, SIGTERM) inside the block names ``experiment_dir``, whose folder exists, to resume."""
    try:
        yield
    except KeyboardInterrupt as exc:
        if not hasattr(exc, "experiment_dir"):
            exc.experiment_dir = experiment_dir  # type: ignore[attr-defined]
        raise
    except SystemExit as exc:
        # Ray's own SIGTERM handler, while ray.init runs: sys.exit(15)
        if exc.code == signal.SIGTERM:
            stop = Stopped(int(signal.SIGTERM))
            stop.experiment_dir = experiment_dir  # type: ignore[attr-defined]
            raise stop from None
        raise


class Stopped(KeyboardInterrupt):
    """SIGTERM outside Tune's run (start-up, finalizing): stops the command as Ctrl-C does."""

    def __init__(self, signum: int) -> None:
        super().__init__()
        self.signum = signum


def stop_on_sigterm() -> None:
    """For the command: SIGTERM anywhere ends it as Ctrl-C does (exit 143 and the resume line), instead of
    killing it silently; during ``Tuner.fit`` :func:`interruptions` turns it into Tune's graceful stop."""
    if threading.current_thread() is not threading.main_thread():
        return

    signal.signal(signal.SIGTERM, _raise_stopped)


def _raise_stopped(signum: int, frame: Any) -> None:
    raise Stopped(signum)


def keep_our_sigterm(previous: Any) -> None:
    """``ray.init`` installs its own SIGTERM handler (``sys.exit(15)``); put ours back if it was there."""
    if previous is _raise_stopped and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_stopped)


def stop_message(exc: KeyboardInterrupt) -> tuple[str, int]:
    """The one line and exit status for a stop outside Tune's run: the sweep to resume, if one has a folder."""
    signum = int(getattr(exc, "signum", signal.SIGINT))
    experiment = getattr(exc, "experiment_dir", None)
    if experiment:
        stop = Interrupted(signum, experiment)
        return str(stop), stop.exit_code
    name = signal.Signals(signum).name
    return f"interrupted ({name}) before the sweep had a folder; nothing was written", 128 + signum


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    started_at: float

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        return f"pid {self.pid} on {self.host}, since {started}"


def _holder(path: Path) -> LockHolder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
        return LockHolder(int(data["pid"]), str(data["host"]), float(data["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def in_use_by(experiment_dir: str) -> str | None:
    """Who holds the folder's lock now (a sweep that has just made it and not yet written its config),
    or None; reads only, creates nothing."""
    import fcntl

    path = Path(experiment_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(path)
        return holder.describe() if holder else "another process"
    finally:
        os.close(fd)
    return None


@contextmanager
def experiment_lock(experiment_dir: str, *, create: bool) -> Iterator[None]:
    """Hold the experiment folder for this driver alone while the block runs.

    ``create``: a new sweep makes the folder itself (``mkdir`` is atomic: of two sweeps started with the
    same name, one gets it, the other is refused). Then an exclusive ``flock`` on ``.hindsight.lock``
    (pid, host, start time inside): a second driver (a ``resume`` of a live sweep) is refused in one line.
    The kernel drops the lock when its process dies, so the lock of a killed driver is taken over.
    Remote storage (s3://...) has no such lock: one driver per experiment is then the user's to keep.
    """
    import fcntl

    folder = Path(experiment_dir)
    if create:
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            folder.mkdir()
        except FileExistsError:
            raise UserError(
                f"experiment {folder} already exists; choose another --name, or resume it"
            ) from None
        except OSError as exc:
            raise UserError(
                f"storage {folder.parent}: cannot create the experiment folder ({exc.strerror})"
            ) from None
    path = folder / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(
            f"experiment {folder}: cannot take its lock {path} ({exc.strerror})"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            who = holder.describe() if holder else "another process"
            raise UserError(
                f"experiment {folder} is in use by a running sweep ({who}); wait for it, or stop it and resume"
            ) from None
        record = json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "started_at": time.time()}
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode("utf-8"), 0)
        try:
            yield
        finally:
            # unlocked and empty: free for the next driver
            os.ftruncate(fd, 0)
    finally:
        # closing drops the flock
        os.close(fd)
