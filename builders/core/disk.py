"""A full disk stops a build with one line naming the folder, never with a corrupt or half-written sample."""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path

NO_SPACE = "No space left on device"  # what ffmpeg and the C library print for ENOSPC


class DiskFull(SystemExit):
    """No room left where the build writes; a SystemExit so the command prints it without a traceback,
    also when a worker process raises it."""

    def __init__(self, folder: str | Path, what: str):
        super().__init__(f"no space left in {folder} ({what}); free some, or point it at a larger disk, "
                         "then re-run the same command to resume")


@contextlib.contextmanager
def fatal_when_full(folder: str | Path, what: str):
    """Turn ENOSPC (and EDQUOT, a full quota) inside the block into DiskFull; the writer's own cleanup has
    already run, so what was being written is gone rather than half there."""
    try:
        yield
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(folder, what) from None
        raise
