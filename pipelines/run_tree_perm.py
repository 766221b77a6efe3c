"""Stage 3 of the screening alone: time-aware permutation importance over every usable feature.

Usage::

    python -m pipelines.run_tree_perm --periods 1h,4h --time-perm --block-len 48 --group-cols symbol \\
        --perm-repeats 5 --targets target_binarytrend,target_logreturn [--config ...] [--experts ...]

(``python -m features.selection.tree_perm`` with the same flags runs this entry point too.) The flags become
overrides of the screening config, validated by the same loader as the YAML file. Results go to
``<output_root>/<Expert>/base/tree_perm/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import pandas as pd

from features.selection.config import ScreeningConfig, resolve_experts
from features.selection.filter_stage import drop_reasons
from features.selection.stats import correlation_clusters
from pipelines.run_feature_screening import expert_targets, period_data, read_table, run_stage3
from utils.cli import guarded
from utils.config import load_config

logger = logging.getLogger(__name__)


def stage3_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The command line as config overrides (dotted keys), so the loader validates them like the file."""
    periods = [p.strip() for p in args.periods.split(",") if p.strip()]
    out: dict[str, object] = {"periods": periods, "tree_perm.group_cols": args.group_cols.split(","),
                              "tree_perm.modes": ["cyclic", "block"] if args.time_perm else ["cyclic"]}
    if args.block_len:
        out["tree_perm.block_len_by_period"] = {p: args.block_len for p in periods}
    if args.perm_repeats:
        out["tree_perm.repeats"] = args.perm_repeats
    return out


def run_stage3_alone(cfg: ScreeningConfig, experts: list[str] | None, targets: list[str] | None) -> list[Path]:
    """Stage 3 over each expert's base table, every usable feature a candidate; returns the summary files."""
    written = []
    for expert in resolve_experts(cfg, experts):
        wanted = expert_targets(cfg, expert)
        if targets:
            wanted = [t for t in wanted if t.name in targets]
        path = cfg.experts[expert].pkl_path
        table = read_table(path, cfg.periods)  # once for all periods
        data = [period_data(table, "base", p, wanted, cfg, path) for p in cfg.periods]
        # the columns stage 1 would drop before testing (all-NaN, constant, levels) are no candidates here
        data = [dataclasses.replace(d, features=[f for f in d.features if f not in drop_reasons(
            d.train, d.features, cfg.filter.params)]) for d in data]
        stats = pd.DataFrame([{"period": d.period, "target": t.name, "feature": f, "representative": True,
                               "t_nw": 0.0} for d in data for t in wanted for f in d.features])
        folder = Path(cfg.output_root) / expert / "base" / "tree_perm"
        clusters = pd.concat([correlation_clusters(d.train[d.features].rank().corr(), cfg.filter.params.corr_threshold)
                              .rename_axis("feature").reset_index().assign(period=d.period) for d in data])
        run_stage3(data, wanted, cfg, stats, folder, clusters, features_from="all")
        logger.info("%s: %s", expert, folder / "summary.csv")
        written.append(folder / "summary.csv")
    return written


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 on a config or data error)."""
    from utils.logging_setup import configure_logging

    p = argparse.ArgumentParser(prog="python -m pipelines.run_tree_perm", description=__doc__.split("\n")[0])
    p.add_argument("--config", default="pipelines/configs/feature_selection.yaml")
    p.add_argument("--experts", default=None)
    p.add_argument("--periods", default="1h")
    p.add_argument("--time-perm", action="store_true", help="time-aware permutations (cyclic and block)")
    p.add_argument("--block-len", type=int, default=None)
    p.add_argument("--group-cols", default="symbol")
    p.add_argument("--perm-repeats", type=int, default=None)
    p.add_argument("--targets", default=None)
    args = p.parse_args(argv)
    configure_logging(False)
    return guarded(lambda: run_stage3_alone(load_config(args.config, ScreeningConfig, stage3_overrides(args)),
                                            args.experts.split(",") if args.experts else None,
                                            args.targets.split(",") if args.targets else None))


if __name__ == "__main__":
    raise SystemExit(main())
