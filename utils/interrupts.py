"""Ctrl-C that never lands inside a write.

Python raises ``KeyboardInterrupt`` between any two bytecodes, including between a lock's acquire and the
``try`` that releases it (a ``with lock:`` in TensorBoard's event writer, in ``queue.Queue``): the lock then stays
held and the shutdown that follows (the logger's flush and close) waits on it forever. Output callbacks wrap their
writes in :func:`deferred_sigint`, so a Ctrl-C is taken when the write is done.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def deferred_sigint() -> Iterator[None]:
    """Hold SIGINT for the duration of the block, then deliver it (to the handler that was installed before)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals (and may install handlers)
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and previous != signal.SIG_IGN:
            if callable(previous):
                previous(signal.SIGINT, None)
            else:  # SIG_DFL, or a handler installed outside Python (None): never drop a Ctrl-C
                raise KeyboardInterrupt
