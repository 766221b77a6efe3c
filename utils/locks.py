"""One writer per output folder: :func:`output_lock` (a ``filelock`` lock file beside the folder).

Build, fusion, training (per leaf), walk-forward, stacking and screening hold it while they write. A second
run on the same folder waits with a message, or stops with a ``DataError`` when it was asked not to wait
(``--no-wait``). The lock is an OS file lock: a killed run releases it, so no stale lock can block anyone.
Once held, leftovers of earlier runs in the folder (staging folders, temp files) are removed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from utils.errors import DataError
from utils.io import remove_stale

logger = logging.getLogger(__name__)


def lock_path(folder: str | os.PathLike[str]) -> Path:
    """The lock file of ``folder``: ``.<name>.lock`` beside it (the folder itself may be swapped whole)."""
    folder = Path(folder)
    return folder.parent / f".{folder.name}.lock"


@contextmanager
def output_lock(folder: str | os.PathLike[str], wait: bool = True, what: str = "run") -> Iterator[Path]:
    """Hold the lock of ``folder`` for the body; yields the lock file's path.

    Parameters
    ----------
    folder : path-like
        The output folder this run writes.
    wait : bool
        Wait for another holder (logging that it waits), or raise at once.
    what : str
        Names the run in messages (``build``, ``fusion``, ...).

    Raises
    ------
    DataError
        ``wait=False`` and another run holds the lock.
    """
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise DataError(f"{folder} is being written by another {what} (lock {path}); wait for it to finish, "
                            f"or run again without --no-wait to wait for it") from None
        logger.warning("another %s is writing %s (lock %s): waiting for it to finish ...", what, folder, path)
        started = time.monotonic()
        lock.acquire()
        logger.info("lock on %s acquired after %.0f s", folder, time.monotonic() - started)
    try:
        # nobody else writes here now: what an earlier, killed run left behind can go
        for stale in remove_stale(Path(folder), max_age_s=0) if Path(folder).is_dir() else []:
            logger.info("removed the leftover %s of an earlier, interrupted run", stale)
        yield path
    finally:
        lock.release()
