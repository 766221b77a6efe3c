"""Shared tail of every entry point: a user error becomes one log line and exit code 2."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from utils.errors import Interrupted, ProjectError

logger = logging.getLogger(__name__)


#: Exit codes of every entry script (README, "Exit codes").
EXIT_OK, EXIT_FAILED_CHECK, EXIT_BAD_INPUT, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143


def guarded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Run ``fn``; return 0, 2 after logging the message of a :class:`ProjectError` (no traceback), or 130 / 143
    after a run stopped by SIGINT / SIGTERM (:class:`Interrupted`)."""
    try:
        fn(*args, **kwargs)
    except ProjectError as exc:
        logger.error("%s", exc)
        return EXIT_BAD_INPUT
    except Interrupted as exc:
        logger.error("interrupted: %s", exc)
        return exc.exit_code
    return EXIT_OK


def add_output_flags(parser: argparse.ArgumentParser, writer: str, data_root: bool = True) -> None:
    """The flags every entry that reads a build and writes outputs shares: ``--data-root``, ``--no-wait``, ``-v``.

    ``writer`` names what holds the lock (``"run trains this leaf"``) in the ``--no-wait`` help.
    """
    if data_root:
        parser.add_argument("--data-root", help="data root of the build (its --out): the config's data/... paths "
                                                "move there")
    parser.add_argument("--no-wait", action="store_true", help=f"stop (exit 2) if another {writer}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
