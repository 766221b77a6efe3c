"""Giving freed memory back to the operating system between the phases of a long run."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return lib if lib is not None and hasattr(lib, "malloc_trim") else None


def release_freed_memory() -> bool:
    """Return freed memory to the OS: Arrow's memory pool, then the C heap (glibc ``malloc_trim``; False where
    there is no such call).

    glibc keeps freed medium-sized blocks (the temporaries of building windows or of a training step) in its
    arenas, and Arrow's allocator caches the buffers of the parquet pieces it has read, so a process's resident
    memory stays at its high-water mark; the next phase's large arrays, which are mapped afresh, then add to it.
    Called between the phases of a training run, this keeps the peak near what is live.
    """
    if "pyarrow" in sys.modules:  # only if something read parquet: importing it here would cost memory
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    lib = _libc()
    if lib is None:
        return False
    lib.malloc_trim(0)
    return True
