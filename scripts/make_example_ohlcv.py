"""Write plain OHLCV CSV files of a null market, to try the stocks / FX path of the README without real data.

Usage::

    python scripts/make_example_ohlcv.py --out data_stocks_raw [--kind stocks|fx] [--symbols 6] [--years 6]

``stocks``: one ``<SYMBOL>.csv`` per symbol with ``Date,Open,High,Low,Close,Volume`` daily rows on weekdays
(plain dates, as exported by most data vendors). ``fx``: hourly rows with UTC timestamps on the FX calendar
(Sunday 17:00 to Friday 17:00 New York). Prices are random walks with volatility clustering and fat tails
(:mod:`src.null_market`): nothing in them is predictable, so every honest model must report no skill.
Replace the folder with your own files in the same layout for real work.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from src.market_calendar import FX_DAY_START, FX_TIMEZONE
from src.null_market import null_bars
from utils.cli import guarded
from utils.errors import DataError
from utils.io import write_text
from utils.logging_setup import configure_logging

logger = logging.getLogger(__name__)
STOCK_NAMES = ["ACME", "BOLT", "CRUX", "DYNA", "ECHO", "FLUX", "GRID", "HALO", "IRIS", "JADE"]
FX_NAMES = ["EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCAD", "USDCHF", "NZDUSD", "EURGBP", "EURJPY", "GBPJPY"]


def example_frames(kind: str, symbols: int, years: float, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Null-market bars per symbol in the plain layout of ``kind`` (see module docstring)."""
    if kind == "stocks":
        n = int(years * 252)
        bars = null_bars(n, symbols, seed, freq="D", calendar="session", start="2018-01-02", vol=0.015)
        names = STOCK_NAMES
    else:
        n = int(years * 365 * 24)
        bars = null_bars(n, symbols, seed, freq="h", calendar="24/7", start="2018-01-01", vol=0.0012)
        names = FX_NAMES
    out = {}
    for name, frame in zip(names, bars.values(), strict=False):
        if kind == "stocks":
            plain = pd.DataFrame({"Date": frame["timestamp"].dt.strftime("%Y-%m-%d")})
        else:
            clock = frame["timestamp"].dt.tz_convert(FX_TIMEZONE).dt.tz_localize(None) - FX_DAY_START
            frame = frame[(clock.dt.dayofweek < 5).to_numpy()]
            plain = pd.DataFrame({"Timestamp": frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")})
        for col in ("open", "high", "low", "close", "volume"):
            plain[col.capitalize()] = frame[col].round(6).to_numpy()
        out[name] = plain
    return out


def write_examples(out: str | Path, kind: str, symbols: int, years: float, seed: int = 0) -> list[Path]:
    """Write the example files into ``out`` (which must be empty or absent); returns their paths."""
    folder = Path(out)
    if folder.exists() and any(folder.iterdir()):
        raise DataError(f"{folder} is not empty; give a new folder for the example files")
    if not 1 <= symbols <= len(STOCK_NAMES):
        raise DataError(f"--symbols {symbols}: give 1 to {len(STOCK_NAMES)}")
    paths = []
    for name, frame in example_frames(kind, symbols, years, seed).items():
        paths.append(write_text(frame.to_csv(index=False), folder / f"{name}.csv"))
    logger.info("%d %s example file(s) -> %s", len(paths), kind, folder)
    return paths


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = argparse.ArgumentParser(prog="python scripts/make_example_ohlcv.py", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="new folder for the CSV files")
    p.add_argument("--kind", choices=["stocks", "fx"], default="stocks")
    p.add_argument("--symbols", type=int, default=6)
    p.add_argument("--years", type=float, default=6.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    configure_logging(args.verbose)
    return guarded(write_examples, args.out, args.kind, args.symbols, args.years, args.seed)


if __name__ == "__main__":
    raise SystemExit(main())
