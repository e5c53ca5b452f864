"""The tests' own children die with the process that started them (tests/spawn.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

PARENT = """
import subprocess, sys
from tests.spawn import die_with_pytest
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], preexec_fn=die_with_pytest)
print(child.pid, flush=True)
"""  # the parent prints its child's pid and exits at once, as a killed pytest would leave it


def test_a_child_is_stopped_when_the_process_that_started_it_dies():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", PARENT], capture_output=True, text=True, timeout=60, cwd=root)
    pid = int(done.stdout.strip())
    deadline = time.monotonic() + 30  # generous: only a child that lives on fails this
    while time.monotonic() < deadline:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return  # gone
        if state == "Z":  # ended, waiting for init to reap it
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    raise AssertionError("the child outlived its parent")
