"""Warm-start a TFT expert leaf from the checkpoint named in its weights_config.yaml.

Usage::

    python warm_start_train.py --config configs/experts/<Expert>/<period>/<modality>/model_config.yaml [--set key=value]
"""

from __future__ import annotations

from models.training import entry


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return entry(argv, init_from="warm", prog="warm_start_train.py")


if __name__ == "__main__":
    raise SystemExit(main())
