"""Resume a TFT expert leaf from its last.ckpt (optimizer, scheduler and epoch state).

Usage::

    python train_resume.py --config configs/experts/<Expert>/<period>/<modality>/model_config.yaml [--set key=value]
"""

from __future__ import annotations

from models.training import entry


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return entry(argv, init_from="resume", prog="train_resume.py")


if __name__ == "__main__":
    raise SystemExit(main())
