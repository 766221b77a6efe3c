"""Exception hierarchy shared by every stage of the toolkit.

Every error a user can cause by bad input derives from :class:`ProjectError`, so entry
scripts can catch it, print one clear message and exit non-zero without a traceback.
"""

from __future__ import annotations


class ProjectError(Exception):
    """Base class for errors caused by the user's input (data, configs, arguments)."""


class ConfigError(ProjectError):
    """A configuration file or override is invalid (unknown key, wrong type, bad value)."""


class DataError(ProjectError):
    """Input data is malformed or cannot support the requested operation."""


class Interrupted(Exception):  # noqa: N818 - a state, not a fault: the run stopped on a signal
    """A run stopped by SIGTERM or SIGINT after saving what lets it continue; ``exit_code`` is 143 or 130."""

    def __init__(self, message: str, signal_name: str) -> None:
        super().__init__(message)
        self.signal_name = signal_name
        self.exit_code = 143 if signal_name == "SIGTERM" else 130
