"""Train the Z-Combiner stacking layer and compare it with the experts' baselines.

Usage::

    python experts/Z-Combiner/train_z.py --config experts/Z-Combiner/model_config.yaml [--set model=mlp]

See :mod:`models.z_combiner` for the method; outputs go to ``output_dir`` (default
``lightning_logs/experts/Z-Combiner``): ``metrics_<stamp>.json``, ``predictions/`` and ``eval_report_*.csv``.
"""

from __future__ import annotations

import argparse
import logging

from models.z_combiner import format_comparison, load_z_config, train_z
from utils.cli import add_output_flags, guarded
from utils.config import parse_override
from utils.locks import output_lock

logger = logging.getLogger("train_z")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 bad config or data)."""
    from utils.logging_setup import configure_logging

    p = argparse.ArgumentParser(prog="experts/Z-Combiner/train_z.py", description=__doc__.split("\n")[0])
    p.add_argument("--config", default="experts/Z-Combiner/model_config.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    add_output_flags(p, "run writes the output folder", data_root=False)
    args = p.parse_args(argv)
    configure_logging(args.verbose)
    return guarded(_train, args)


def _train(args: argparse.Namespace) -> None:
    cfg = load_z_config(args.config, dict(parse_override(s) for s in args.set))
    with output_lock(cfg.output_dir, not args.no_wait, "Z-Combiner run"):
        result = train_z(cfg)
    print(f"Z-Combiner {cfg.period} {cfg.target} ({cfg.model}), hold-out span {result.metrics['holdout_span'][0]} "
          f".. {result.metrics['holdout_span'][1]} ({result.metrics['holdout_rows']:,} rows)")
    print(format_comparison(result))
    print(f"metrics: {result.metrics_path}\npredictions: {result.predictions_path}\neval report: {result.report_path}")


if __name__ == "__main__":
    raise SystemExit(main())
