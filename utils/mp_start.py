"""Spawn-safe multiprocessing start for DataLoader workers.

On Windows and macOS worker processes are spawned, which re-imports the entry script; that is safe
only because every entry script runs its work under ``if __name__ == "__main__"``. This sets the
start method explicitly (``spawn`` where fork is unavailable or unsafe) once per process.
"""

from __future__ import annotations

import multiprocessing as mp
import sys


def ensure_spawn_safe() -> str:
    """Set the start method once (spawn on Windows/macOS, the platform default elsewhere); return it."""
    current = mp.get_start_method(allow_none=True)
    if current is None:
        default = mp.get_all_start_methods()[0]  # the platform default, without fixing the context yet
        mp.set_start_method("spawn" if sys.platform in ("win32", "darwin") else default)
    return mp.get_start_method()
