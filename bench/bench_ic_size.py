"""Size of the screening's IC test on null markets: how often it rejects when nothing is predictable.

Usage::

    python bench/bench_ic_size.py [--period 1h] [--calendar 24/7] [--bars 3000] [--symbols 3] [--seeds 12]

For each seed, a null OHLCV market (``src/null_market.py``: random walks with volatility clustering, fat
tails and a common factor) is run through the real indicator and target code, and the stage-1 statistic
(per-symbol time-series Spearman IC combined across symbols, Newey-West t with a lag of two label horizons;
:func:`features.selection.stats.time_series_ic`) is computed for every non-level feature against
``target_logreturn`` (1 bar) and ``target_binarytrend_h4`` (4 bars). Prints, per target, the share of
(feature, seed) tests with p < 0.05 and p < 0.01 (nominal: 0.05 and 0.01) and the mean largest |t| per panel.
The shares are clustered (correlated features reject together), so a few seeds scatter widely.
"""

from __future__ import annotations

import argparse
import logging
import warnings

import pandas as pd

from features.selection.filter_stage import nw_lag
from features.selection.stats import time_series_ic
from features.stationarity import is_level_name
from src.null_market import null_panel
from utils.timeline import feature_columns

TARGETS = (("target_logreturn", 1), ("target_binarytrend_h4", 4))


def main(argv: list[str] | None = None) -> int:
    """Run the size check and print one line per target."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--period", default="1h", choices=["1h", "4h", "1d"])
    p.add_argument("--calendar", default="24/7", choices=["24/7", "session"])
    p.add_argument("--bars", type=int, default=3000)
    p.add_argument("--symbols", type=int, default=3)
    p.add_argument("--seeds", type=int, default=12)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    rows = []
    for seed in range(args.seeds):
        panel = null_panel(args.bars, args.symbols, seed=100 + seed, period=args.period, calendar=args.calendar)
        panel = panel.sort_values(["timestamp", "symbol"], ignore_index=True)
        feats = [c for c in feature_columns(panel) if not is_level_name(c) and panel[c].std() > 0]
        for target, h in TARGETS:
            m = panel[target].notna().to_numpy()
            res = time_series_ic(panel.loc[m, feats], panel.loc[m, target], panel["symbol"].to_numpy()[m],
                                 panel["timestamp"].to_numpy()[m], nw_lag(h, 2.0))
            rows.append({"target": target, "seed": seed, "p<0.05": (res["p"] < 0.05).mean(),
                         "p<0.01": (res["p"] < 0.01).mean(), "max|t|": res["t_nw"].abs().max()})
    table = pd.DataFrame(rows)
    print(f"{args.symbols} symbol(s) x {args.bars} {args.period} bars ({args.calendar}), {args.seeds} seeds, "
          f"{len(feats)} features")
    print(table.groupby("target")[["p<0.05", "p<0.01", "max|t|"]].mean().to_string(float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
