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
