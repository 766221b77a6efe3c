"""Shared tail of every entry point: a user error becomes one log line and exit code 2."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from utils.errors import ProjectError

logger = logging.getLogger(__name__)


def guarded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Run ``fn``; return 0, or 2 after logging the message of a :class:`ProjectError` (no traceback)."""
    try:
        fn(*args, **kwargs)
    except ProjectError as exc:
        logger.error("%s", exc)
        return 2
    return 0
