"""Logging configuration for entry scripts (library modules only call ``getLogger``)."""

from __future__ import annotations

import logging

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(verbose: bool = False) -> None:
    """Log INFO (DEBUG with ``verbose``) to stderr.

    Idempotent and additive: it adds one handler of its own and leaves handlers installed by
    others (an embedding application, pytest's capture) in place.
    """
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(getattr(h, "_tft_module", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        handler._tft_module = True  # type: ignore[attr-defined]
        root.addHandler(handler)
