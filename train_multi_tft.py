"""Train a TFT expert leaf from scratch.

Usage::

    python train_multi_tft.py --config configs/experts/<Expert>/<period>/<modality>/model_config.yaml [--set key=value]
"""

from __future__ import annotations

from models.training import entry


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return entry(argv, init_from=None, prog="train_multi_tft.py")


if __name__ == "__main__":
    raise SystemExit(main())
