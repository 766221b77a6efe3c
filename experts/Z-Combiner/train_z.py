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
from utils.config import parse_override
from utils.errors import ProjectError
from utils.locks import output_lock

logger = logging.getLogger("train_z")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 bad config or data)."""
    from utils.logging_setup import configure_logging

    p = argparse.ArgumentParser(prog="experts/Z-Combiner/train_z.py", description=__doc__.split("\n")[0])
    p.add_argument("--config", default="experts/Z-Combiner/model_config.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--no-wait", action="store_true", help="stop (exit 2) if another run writes the output folder")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    configure_logging(args.verbose)
    try:
        cfg = load_z_config(args.config, dict(parse_override(s) for s in args.set))
        with output_lock(cfg.output_dir, not args.no_wait, "Z-Combiner run"):
            result = train_z(cfg)
    except ProjectError as exc:
        logger.error("%s", exc)
        return 2
    print(f"Z-Combiner {cfg.period} {cfg.target} ({cfg.model}), hold-out span {result.metrics['holdout_span'][0]} "
          f".. {result.metrics['holdout_span'][1]} ({result.metrics['holdout_rows']:,} rows)")
    print(format_comparison(result))
    print(f"metrics: {result.metrics_path}\npredictions: {result.predictions_path}\neval report: {result.report_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
