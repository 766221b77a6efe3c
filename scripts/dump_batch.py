"""Print one batch's tensor names, shapes and dtypes for a leaf (a debugging aid).

Usage::

    python scripts/dump_batch.py --config configs/experts/Alpha-Dir-TFT/1h/base/model_config.yaml [--split val]
"""

from __future__ import annotations

import argparse
import sys

from models.leaf_config import load_leaf
from models.window_dataset import build_window_data, make_loader
from utils.errors import ProjectError


def describe_batch(config: str, split: str = "val") -> list[str]:
    """Lines ``name shape dtype`` for the first batch of ``split``."""
    leaf = load_leaf(config)
    data = build_window_data(leaf)
    batch = next(iter(make_loader(data, split, leaf.model.training.batch_size, shuffle=False)))
    lines = [f"{name:16s} {tuple(t.shape)!s:20s} {t.dtype}" for name, t in batch.items()]
    more = " ..." if len(data.features) > 8 else ""
    lines.append(f"features ({len(data.features)}): {', '.join(data.features[:8])}{more}")
    lines.append(f"targets: {', '.join(data.targets)}; known future: {', '.join(data.known_names)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = argparse.ArgumentParser(prog="scripts/dump_batch.py", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    args = p.parse_args(argv)
    try:
        print("\n".join(describe_batch(args.config, args.split)))
    except ProjectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
