"""What the interaction screen (``model.interaction_pairs``) keeps on a leaf's training span, and on null markets.

Usage::

    python bench/bench_pair_screen.py [--leaf Alpha-Dir-TFT/1h/rich ...] [--max-pairs 8]
                                      [--null-seeds 3] [--null-bars 8000] [--null-symbols 6]
                                      [--calendars 24/7,session]

For each ``--leaf``: the screen exactly as training runs it (:func:`models.training.screen_pairs`: the leaf's
training windows, scaled inputs and targets), with the kept pairs and the bound they passed. For each null seed and
calendar: a null panel (:func:`src.null_market.null_panel`: random walks with volatility clustering, fat tails and
a common factor, through the real indicator and target code) with every numeric indicator standardized per symbol
as inputs and the 1- and 4-bar direction and the 1-bar log return as targets; a sound screen keeps no pair there
(family-wise rate 5%), and the largest ``|t|`` shows how far below the bound the noise stays.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from features.interactions import PairScreen
from models.leaf_config import load_leaf
from models.training import screen_pairs
from models.window_dataset import build_window_data, read_table
from src.null_market import null_panel

META = {"symbol", "period", "timestamp", "time_idx", "gap_before"}
NULL_TARGETS = [("target_binarytrend", "classification", 1), ("target_logreturn", "regression", 1),
                ("target_binarytrend_h4", "classification", 4)]


def null_screen(seed: int, n_bars: int, n_symbols: int, calendar: str, max_pairs: int) -> tuple[PairScreen, float]:
    """The screen on one null panel, and the largest ``|t|`` of any pair there (kept or not)."""
    panel = null_panel(n_bars, n_symbols, seed=seed, calendar=calendar)
    names = [n for n, _, _ in NULL_TARGETS]
    inputs = [c for c in panel.columns if c not in META and not c.startswith("target_")
              and panel[c].dtype.kind in "fiu"]
    rows = panel.dropna(subset=inputs + names)
    X = rows.groupby("symbol")[inputs].transform(lambda s: (s - s.mean()) / s.std()).to_numpy()
    keep = np.isfinite(X).all(axis=0) & (np.nanstd(X, axis=0) > 0)
    screen = PairScreen(max_pairs=max_pairs).fit(
        X[:, keep], rows[names].to_numpy(), rows["timestamp"].to_numpy(), [k for _, k, _ in NULL_TARGETS],
        [h for _, _, h in NULL_TARGETS], names)
    return screen, float(np.abs(screen.scores_).max())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--leaf", action="append", default=[], help="<Expert>/<period>/<modality> (repeatable)")
    p.add_argument("--max-pairs", type=int, default=8, help="model.interaction_pairs for the leaves")
    p.add_argument("--null-seeds", type=int, default=3, help="null panels per calendar (0: none)")
    p.add_argument("--null-bars", type=int, default=8000, help="hourly bars per null symbol")
    p.add_argument("--null-symbols", type=int, default=6, help="symbols per null panel")
    p.add_argument("--calendars", default="24/7,session", help="null calendars (comma list)")
    args = p.parse_args(argv)
    if args.max_pairs < 1:
        p.error(f"--max-pairs {args.max_pairs}: give 1 or more")
    logging.basicConfig(level=logging.WARNING)
    for name in args.leaf:
        t0 = time.perf_counter()
        leaf = load_leaf(Path("configs/experts") / name / "model_config.yaml",
                         [f"model.interaction_pairs={args.max_pairs}", "model.interaction_l2=0"])
        data = build_window_data(leaf, read_table(leaf.model.data.path))
        pairs = screen_pairs(leaf, data)
        print(f"{name}: {len(data.features)} inputs, {len(data.splits['train']):,} training windows; "
              f"{len(pairs)} pairs kept ({time.perf_counter() - t0:.0f} s)")
        for row in pairs:
            print(f"  {row['left']} x {row['right']}: t {row['tstat']:+.2f} ({row['target']})")
    for calendar in (c for c in args.calendars.split(",") if c):
        for seed in range(args.null_seeds):
            t0 = time.perf_counter()
            screen, top = null_screen(seed, args.null_bars, args.null_symbols, calendar, args.max_pairs)
            print(f"null {calendar} seed {seed}: {screen.n_tested_:,} pairs x {len(NULL_TARGETS)} targets, bound "
                  f"|t| > {screen.critical_:.2f}, kept {len(screen.pairs_)}, largest |t| {top:.2f} "
                  f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
