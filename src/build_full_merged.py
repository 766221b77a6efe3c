"""Raw market data -> indicators -> targets -> merged long panel.

Usage::

    python src/build_full_merged.py [--periods 1h,4h,1d] [--raw-dir data/raw] [--symbols BTCUSDT,ETHUSDT] [--synthetic]

``--synthetic`` builds the embedded synthetic market (generated into the raw folder when that is empty, reused
when it already holds it); without it, a missing raw folder or one with no recognised price file is an error
that lists what was found. Nothing else is ever written into the raw folder.
Outputs: ``data/crypto_targeted_and_indicated/<tf>/``, ``data/merged/full_merged.csv`` (+ parquet)
and ``data/pkl_merged/full_merged.pkl``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from src.build_config import DEFAULT_CONFIG, BuildConfig
from src.generate_targets_auto import convert_selected_periods_to_csv
from src.indicating import feature_columns, indicating_main
from src.market_calendar import Calendar, assign_time_idx, detect_calendar
from src.market_data import discover_raw, infer_period, load_price_bars, period_delta, resample_ohlcv
from src.merging import merged_main
from src.synthetic_market import MarketSpec, generate
from utils.cli import guarded
from utils.config import from_mapping, load_config
from utils.errors import DataError, ProjectError
from utils.logging_setup import configure_logging

logger = logging.getLogger(__name__)


def _period_bars(bars: dict[str, pd.DataFrame], tf: str, calendar: Calendar) -> dict[str, pd.DataFrame]:
    """Bars of period ``tf`` per symbol: as-is at the base period, resampled above it."""
    delta = period_delta(tf)
    out = {}
    for sym, frame in bars.items():
        base = period_delta(infer_period(frame["timestamp"]))
        if delta < base:
            logger.warning("%s: cannot build %s bars from %s data; skipped", sym, tf, base)
        elif delta == base:
            out[sym] = frame
        else:
            expected = int(delta / base) if calendar == "24/7" else None
            out[sym] = resample_ohlcv(frame, tf, expected_count=expected)
    return out


RAW_LAYOUTS = ("Binance public dumps: <raw>/.../klines/<SYMBOL>/<interval>/*.zip|*.csv (and premiumIndexKlines/, "
               "fundingRate/, metrics/ beside them); generic OHLCV: <raw>/<SYMBOL>.csv|.parquet with a time column "
               "(timestamp/date/...) and open, high, low, close, volume, or one file with a symbol column")


def _ensure_raw(cfg: BuildConfig):
    """The raw inventory; the synthetic market is generated only when asked for (``--synthetic``).

    Raises
    ------
    DataError
        When the raw folder does not exist or holds no recognised price file (listing what it holds and
        the layouts accepted), or when ``--synthetic`` would write into a folder holding other data.
    """
    root = Path(cfg.raw_dir)
    inv = discover_raw(root)
    syn = cfg.synthetic
    if syn.enabled:
        if inv.empty and not (root.exists() and any(root.iterdir())):
            logger.info("generating the embedded synthetic market into %s (%d symbols, %d days, seed %d)", root,
                        syn.symbols, syn.days, syn.seed)
            generate(root, MarketSpec(n_symbols=syn.symbols, days=syn.days, seed=syn.seed, start=syn.start,
                                      strength=syn.strength))
            return discover_raw(root)
        if not (root / "ground_truth.json").is_file():
            raise DataError(f"--synthetic: {root} already holds files that are not the embedded synthetic market; "
                            f"nothing is written into a raw folder with other data: give an empty --raw-dir")
        logger.info("reusing the embedded synthetic market in %s", root)
        return inv
    if not root.is_dir():
        raise DataError(f"raw folder {root} does not exist; put market data there ({RAW_LAYOUTS}), pass --raw-dir, "
                        f"or pass --synthetic to build the embedded synthetic market")
    if inv.empty:
        found = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        shown = found[:10] + ([f"... {len(found) - 10} more"] if len(found) > 10 else [])
        raise DataError(f"no recognised price file under {root} (found: {shown or 'nothing'}); accepted layouts: "
                        f"{RAW_LAYOUTS}; or pass --synthetic to build the embedded synthetic market")
    return inv


def build(cfg: BuildConfig) -> pd.DataFrame:
    """Run the whole build for ``cfg`` and return the merged panel."""
    started = time.perf_counter()
    inv = _ensure_raw(cfg)
    bars = load_price_bars(inv, cfg.symbols)
    if not bars:
        raise DataError(f"no price bars found under {cfg.raw_dir}")
    all_ts = pd.concat([b["timestamp"] for b in bars.values()])
    calendar: Calendar = detect_calendar(all_ts) if cfg.calendar == "auto" else cfg.calendar
    logger.info("%d symbols; market calendar: %s%s", len(bars), calendar,
                " (detected)" if cfg.calendar == "auto" else "")
    panels = {}
    for tf in tqdm(cfg.periods, desc="indicators", unit="period"):
        tf_bars = _period_bars(bars, tf, calendar)
        if not tf_bars:
            continue
        indicated = indicating_main(tf, tf_bars)
        panels[tf] = assign_time_idx(indicated, period_delta(tf), calendar,
                                     pd.Timedelta(days=cfg.max_closure_days))
    if not panels:
        raise DataError(f"none of the periods {cfg.periods} can be built from the data under {cfg.raw_dir}")
    periods = [tf for tf in cfg.periods if tf in panels]
    convert_selected_periods_to_csv(tqdm(periods, desc="targets", unit="period"), panels,
                                    cfg.targeted_dir, cfg.horizons)
    merged = merged_main(periods, cfg.targeted_dir, cfg.merged_csv, cfg.merged_pkl)
    n_feat = len(feature_columns(merged))
    logger.info("done in %.1f s: %d rows, %d feature columns, periods %s",
                time.perf_counter() - started, len(merged), n_feat, periods)
    return merged


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python src/build_full_merged.py", description=__doc__.split("\n")[0])
    p.add_argument("--config", default=None, help=f"YAML config (default: {DEFAULT_CONFIG} if present)")
    p.add_argument("--periods", help="comma-separated periods, e.g. 1h,4h,1d")
    p.add_argument("--raw-dir", help="folder with raw data (Binance dumps or OHLCV files)")
    p.add_argument("--symbols", help="comma-separated symbols to build (default: all found)")
    p.add_argument("--horizons", help="comma-separated target horizons in bars, e.g. 1,4,24")
    p.add_argument("--calendar", choices=["auto", "24/7", "session"], help="market calendar override")
    p.add_argument("--synthetic", action="store_true",
                   help="build the embedded synthetic market (generated into an empty raw folder)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p.parse_args(argv)


def _load(args: argparse.Namespace) -> BuildConfig:
    overrides = {}
    if args.periods:
        overrides["periods"] = [p.strip() for p in args.periods.split(",") if p.strip()]
    if args.raw_dir:
        overrides["raw_dir"] = args.raw_dir
    if args.symbols:
        overrides["symbols"] = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    if args.horizons:
        try:
            overrides["horizons"] = [int(h) for h in args.horizons.split(",")]
        except ValueError:
            raise ProjectError(f"--horizons {args.horizons!r}: give integers like 1,4,24") from None
    if args.calendar:
        overrides["calendar"] = args.calendar
    path = args.config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None)
    cfg = load_config(path, BuildConfig, overrides) if path else from_mapping(BuildConfig, overrides,
                                                                               source="command line")
    if args.synthetic:
        cfg.synthetic.enabled = True
    return cfg


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parse_args(argv)
    configure_logging(args.verbose)
    return guarded(lambda: build(_load(args)))


if __name__ == "__main__":
    raise SystemExit(main())
