"""Processes a test starts end with the test run: if pytest itself is killed (a CI timeout, Ctrl-C twice),
the kernel sends each child SIGTERM, so no sweep, Ray head or S3 server outlives the run."""

from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1


def die_with_pytest() -> None:
    """``preexec_fn`` for ``subprocess.Popen``: SIGTERM (a graceful stop: a sweep exits 143 with its resume
    line, ``ray start --block`` stops its Ray) when the process that started it dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
