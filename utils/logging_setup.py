"""Logging configuration for entry scripts (library modules only call ``getLogger``)."""

from __future__ import annotations

import logging


def configure_logging(verbose: bool = False) -> None:
    """Send INFO (or DEBUG with ``verbose``) records to stderr with timestamps."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
