"""``stage_summary.json``: the one number a stage is judged by, and the validation loss there."""

from __future__ import annotations

import json
from pathlib import Path

from utils.io import write_json


def write_stage_summary(path: str | Path, best_monitor: float | None, best_val_loss: float | None,
                        status: str = "finished") -> Path:
    """Write ``{"best_monitor", "best_val_loss", "status"}`` atomically.

    ``status`` is ``finished``, or ``interrupted`` when a signal stopped the run (a scheduler must not count
    it as done; ``train_resume.py`` continues it).
    """
    return write_json({"best_monitor": best_monitor, "best_val_loss": best_val_loss, "status": status}, path)


def read_stage_summary(path: str | Path) -> dict:
    """Read a stage summary; an empty dict when the stage has not run."""
    p = Path(path)
    return json.loads(p.read_text()) if p.is_file() else {}
