"""A full disk, told apart from other write errors (no imports beyond the standard library: trial workers use it)."""

from __future__ import annotations

import errno

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# a trial's last report when its storage is full: the driver stops the sweep
DISK_FULL_KEY = "disk_full"


def is_disk_full(exc: BaseException) -> bool:
    """A full disk or a quota, also when pyarrow passed the error on without its errno."""
    text = str(exc)
    return isinstance(exc, OSError) and (
        exc.errno in DISK_FULL or "No space left on device" in text or "Disk quota exceeded" in text
    )


class DiskFull(Exception):
    """A trial could not write to the experiment's storage: it is full (raised out of Tune's run)."""
