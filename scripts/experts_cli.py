"""Per-expert shortcuts.

Usage::

    python scripts/experts_cli.py list
    python scripts/experts_cli.py train  --expert Alpha-Dir-TFT --leaf 1h/base [--set training.max_epochs=3]
    python scripts/experts_cli.py resume --expert Alpha-Dir-TFT --leaf 1h/base
    python scripts/experts_cli.py warm   --expert Alpha-Dir-TFT --leaf 1h/rich
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.leaf_config import load_leaf
from models.training import entry
from utils.errors import ProjectError
from utils.stage_summary import read_stage_summary

CONFIG_ROOT = Path("configs/experts")


def leaves(root: Path = CONFIG_ROOT) -> list[Path]:
    """Every ``<Expert>/<period>/<modality>/model_config.yaml`` under ``root``."""
    return sorted(root.glob("*/*/*/model_config.yaml"))


def list_rows(root: Path = CONFIG_ROOT) -> list[dict]:
    """One row per leaf: expert, leaf, trained or not, best monitor value."""
    rows = []
    for path in leaves(root):
        leaf = load_leaf(path)
        summary = read_stage_summary(leaf.ckpt_dir / "stage_summary.json")
        rows.append({"expert": leaf.model.expert, "leaf": f"{leaf.model.period}/{leaf.model.modality}",
                     "trained": (leaf.ckpt_dir / "last.ckpt").is_file(),
                     "best_monitor": summary.get("best_monitor")})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = argparse.ArgumentParser(prog="scripts/experts_cli.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="experts, leaves, trained or not, best monitor")
    for cmd in ("train", "resume", "warm"):
        sp = sub.add_parser(cmd)
        sp.add_argument("--expert", required=True)
        sp.add_argument("--leaf", required=True, help="<period>/<modality>, e.g. 1h/base")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    if args.cmd == "list":
        try:
            rows = list_rows()
        except ProjectError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{'expert':24s} {'leaf':10s} {'trained':8s} best_monitor")
        for r in rows:
            best = "-" if r["best_monitor"] is None else f"{r['best_monitor']:.4f}"
            print(f"{r['expert']:24s} {r['leaf']:10s} {'yes' if r['trained'] else 'no':8s} {best}")
        return 0
    config = CONFIG_ROOT / args.expert / args.leaf / "model_config.yaml"
    if not config.is_file():
        print(f"error: no leaf {args.expert} {args.leaf}: {config} does not exist", file=sys.stderr)
        return 2
    init = {"train": None, "resume": "resume", "warm": "warm"}[args.cmd]
    sets = [f"--set={s}" for s in args.set]
    return entry(["--config", str(config), *sets], init, f"experts_cli.py {args.cmd}")


if __name__ == "__main__":
    raise SystemExit(main())
