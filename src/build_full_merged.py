"""Raw market data -> indicators -> targets -> merged long panel.

Usage::

    python src/build_full_merged.py [--periods 1h,4h,1d] [--raw-dir data/raw] [--symbols BTCUSDT,ETHUSDT]
        [--out DIR] [--timezone UTC] [--calendar auto] [--synthetic]

``--synthetic`` builds the embedded synthetic market (generated into the raw folder when that is empty, reused
when it already holds it); without it, a missing raw folder or one with no recognised price file is an error
that lists what was found. Nothing else is ever written into the raw folder.
Outputs, under the data root (``--out``, default ``data``): ``crypto_targeted_and_indicated/<tf>/``,
``merged/full_merged.csv`` (+ parquet), ``pkl_merged/full_merged.pkl``, and beside the merged CSV the
``ingest_report.csv`` (per symbol and period: partial bins dropped, bars missing against the market's
calendar, gap segments, suspected bad ticks), ``bad_ticks.csv`` and ``build_manifest.json`` (the raw
folder, symbols and periods of this build, read by the fusion). All of them are one generation: staged,
then swapped in together.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from src.bars import resample_ohlcv, suspect_ticks
from src.build_config import DEFAULT_CONFIG, BuildConfig
from src.generate_targets_auto import convert_selected_periods_to_csv
from src.indicating import LONGEST_WINDOW, indicating_main, indicator_columns
from src.market_calendar import MarketSession, assign_time_idx, calendar_missing, detect_session
from src.market_data import discover_raw, ingest_price_bars
from src.merging import BAD_TICKS, INGEST_REPORT, MANIFEST, merged_main
from src.synthetic_market import MarketSpec, generate
from utils.cli import guarded
from utils.config import from_mapping, load_config
from utils.errors import DataError, ProjectError
from utils.io import Generation, remove_stale, write_csv, write_json
from utils.locks import output_lock
from utils.logging_setup import configure_logging
from utils.timeline import period_delta

logger = logging.getLogger(__name__)


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


@dataclass
class PeriodBars:
    """One period's bars per symbol, and per (symbol, period) what the build did (the ingest report rows)."""

    bars: dict[str, pd.DataFrame]
    report: list[dict]


def _period_bars(bars: dict[str, pd.DataFrame], spacing: dict[str, str], tf: str, session: MarketSession,
                 cfg: BuildConfig) -> PeriodBars:
    """Bars of period ``tf`` per symbol: as-is at the native spacing, resampled on session bins above it.

    Partial bins are dropped (counted), symbols with fewer bars than the longest indicator window skipped.
    """
    delta = period_delta(tf)
    min_bars = cfg.min_bars or LONGEST_WINDOW
    out, rows, coarse = {}, [], []
    for sym, frame in bars.items():
        base = period_delta(spacing[sym])
        row = {"symbol": sym, "period": tf, "spacing": spacing[sym], "partial_bins_dropped": 0}
        if delta < base:
            coarse.append(sym)
            rows.append({**row, "status": f"skipped: native spacing {spacing[sym]} is coarser than {tf}"})
            continue
        tf_bars, dropped = (frame, 0) if delta == base else resample_ohlcv(frame, tf, session, base,
                                                                             cfg.min_bin_share)
        row["partial_bins_dropped"] = dropped
        if len(tf_bars) < min_bars:
            logger.warning("%s: %d %s bar(s), fewer than the longest indicator window (%d); skipped", sym,
                           len(tf_bars), tf, min_bars)
            rows.append({**row, "bars": len(tf_bars), "status": f"skipped: {len(tf_bars)} bars < {min_bars}"})
            continue
        out[sym] = tf_bars
        rows.append({**row, "bars": len(tf_bars), "status": "built"})
    if coarse:
        logger.warning("%s: not built for %d symbol(s) whose bars are coarser: %s", tf, len(coarse),
                       ", ".join(coarse[:10]) + (" ..." if len(coarse) > 10 else ""))
    return PeriodBars(out, rows)


def _segments(bars: dict[str, pd.DataFrame], tf: str, session: MarketSession, cfg: BuildConfig) -> dict:
    """Each symbol's bars with a ``segment`` column: a gap longer than ``max_gap_bars`` starts a new one."""
    panel = pd.concat([b[["timestamp"]].assign(symbol=s) for s, b in sorted(bars.items())], ignore_index=True)
    idx = assign_time_idx(panel, period_delta(tf), session.calendar, pd.Timedelta(days=cfg.max_closure_days),
                          session)
    jump = idx.groupby("symbol", sort=False)["time_idx"].diff().gt(cfg.gap_bars(tf))
    seg = jump.groupby(idx["symbol"], sort=False).cumsum().to_numpy()
    out, start = {}, 0
    for sym, frame in sorted(bars.items()):
        out[sym] = frame.assign(segment=seg[start:start + len(frame)])
        start += len(frame)
    return out


def _report_panel(panel: pd.DataFrame, tf: str, session: MarketSession, rows: list[dict]) -> None:
    """Fill the ingest report rows of period ``tf`` with calendar-aware missing bars, gaps and segments."""
    trading = pd.DatetimeIndex(panel["timestamp"].drop_duplicates().sort_values())
    by_sym = {row["symbol"]: row for row in rows if row["period"] == tf}
    for sym, part in panel.groupby("symbol", sort=True):
        row = by_sym[sym]
        row["missing_bars"] = calendar_missing(part["timestamp"], period_delta(tf), session, trading)
        row["gaps"] = int(part["gap_before"].sum())


def _ingest_report(reports: dict, period_rows: list[dict], ticks: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per (symbol, period): what cleaning, resampling and the calendar did."""
    frame = pd.DataFrame(period_rows)
    base = pd.DataFrame([{"symbol": s, "source_rows": r.rows + r.duplicates_dropped,
                          "duplicates_dropped": r.duplicates_dropped, "unsorted_rows": r.unsorted_rows,
                          "bad_ticks": len(ticks.get(s, ()))} for s, r in reports.items()])
    cols = ["symbol", "period", "status", "spacing", "source_rows", "duplicates_dropped", "unsorted_rows", "bars",
            "partial_bins_dropped", "missing_bars", "gaps", "segments", "bad_ticks"]
    out = frame.merge(base, on="symbol", how="left")
    return out.reindex(columns=cols)


def build(cfg: BuildConfig, wait: bool = True) -> pd.DataFrame:
    """Run the whole build for ``cfg`` as one generation, holding the lock of its merged-panel folder."""
    with output_lock(cfg.merged_csv_path.parent, wait, "build"):
        return _build(cfg)


def _build(cfg: BuildConfig) -> pd.DataFrame:
    """Run the whole build for ``cfg`` as one generation and return the merged panel.

    Every output (per-symbol files, the merged panel in each format, the ingest report and the build
    manifest) is staged beside its destination and swapped in only when all are written: a failed or
    killed build leaves the previous generation whole, and only this build's symbols are in the panel.
    """
    started = time.perf_counter()
    inv = _ensure_raw(cfg)
    bars, reports = ingest_price_bars(inv, cfg.symbols, cfg.timezone)
    if not bars:
        raise DataError(f"no price bars found under {cfg.raw_dir}")
    spacing = {s: r.spacing for s, r in reports.items()}
    finest = min(period_delta(p) for p in spacing.values())
    all_ts = pd.concat([b["timestamp"] for b in bars.values()])
    session = detect_session(all_ts, finest, cfg.exchange_timezone, cfg.calendar)
    logger.info("%d symbols; market: %s%s", len(bars), session.describe(),
                " (detected)" if cfg.calendar == "auto" else "")
    ticks = {s: suspect_ticks(b, cfg.bad_tick_multiple) for s, b in bars.items()}
    for sym, flagged in ticks.items():
        if len(flagged):
            logger.warning("%s: %d suspected bad tick(s) (a close move > %g x the recent bar range), kept; first at "
                           "%s (see bad_ticks.csv)", sym, len(flagged), cfg.bad_tick_multiple,
                           flagged["timestamp"].iloc[0])
    panels, period_rows = {}, []
    for tf in tqdm(cfg.periods, desc="indicators", unit="period"):
        pb = _period_bars(bars, spacing, tf, session, cfg)
        period_rows += pb.report
        if not pb.bars:
            continue
        segmented = _segments(pb.bars, tf, session, cfg)
        for row in pb.report:
            if row["symbol"] in segmented:
                row["segments"] = int(segmented[row["symbol"]]["segment"].max()) + 1
        indicated = indicating_main(tf, segmented)
        panels[tf] = assign_time_idx(indicated, period_delta(tf), session.calendar,
                                     pd.Timedelta(days=cfg.max_closure_days), session)
        _report_panel(panels[tf], tf, session, period_rows)
    if not panels:
        raise DataError(f"none of the periods {cfg.periods} can be built from the data under {cfg.raw_dir} "
                        f"(see the warnings above)")
    periods = [tf for tf in cfg.periods if tf in panels]
    report = _ingest_report(reports, period_rows, ticks)
    for row in report.itertuples():
        if row.status == "built" and (row.missing_bars or row.partial_bins_dropped or row.segments > 1):
            logger.info("%s %s: %d bars, %d missing against the %s calendar, %d partial bin(s) dropped, %d "
                        "segment(s)", row.symbol, row.period, row.bars, row.missing_bars, session.kind,
                        row.partial_bins_dropped, row.segments)
    symbols = sorted({s for p in panels.values() for s in p["symbol"].unique()})
    merged = _write_generation(cfg, periods, panels, symbols, report, ticks, session)
    logger.info("done in %.1f s: %d rows, %d feature columns, periods %s, %d symbols",
                time.perf_counter() - started, len(merged), len(indicator_columns(merged)), periods, len(symbols))
    return merged


def _write_generation(cfg: BuildConfig, periods: list[str], panels: dict, symbols: list[str], report: pd.DataFrame,
                      ticks: dict[str, pd.DataFrame], session: MarketSession) -> pd.DataFrame:
    """Stage every output, then swap them in together (see :class:`utils.io.Generation`)."""
    csv, pkl, targeted = cfg.merged_csv_path, cfg.merged_pkl_path, cfg.targeted_path
    for folder in {csv.parent, pkl.parent, targeted.parent}:
        for path in remove_stale(folder):
            logger.info("removed the leftover %s of an earlier, interrupted run", path)
    gen = Generation("build")
    try:
        staged_dir = gen.stage(targeted)
        convert_selected_periods_to_csv(tqdm(periods, desc="targets", unit="period"), panels, staged_dir,
                                        cfg.horizons)
        merged = merged_main(periods, staged_dir, gen.stage(csv), gen.stage(pkl), symbols=symbols,
                             parquet_path=gen.stage(csv.with_suffix(".parquet")))
        write_csv(report, gen.stage(csv.parent / INGEST_REPORT))
        flagged = [t.assign(symbol=s) for s, t in ticks.items() if len(t)]
        tick_frame = pd.concat(flagged, ignore_index=True) if flagged else pd.DataFrame(
            columns=["timestamp", "close", "log_move", "typical_range", "ratio", "symbol"])
        write_csv(tick_frame[["symbol", *[c for c in tick_frame.columns if c != "symbol"]]],
                  gen.stage(csv.parent / BAD_TICKS))
        write_json({"raw_dir": str(Path(cfg.raw_dir).resolve()), "symbols": symbols, "periods": periods,
                    "market": session.describe(), "calendar": session.calendar, "timezone": cfg.timezone,
                    "horizons": list(cfg.horizons), "synthetic": cfg.synthetic.enabled,
                    "created_utc": pd.Timestamp.now(tz="UTC").isoformat(), "merged_csv": str(csv),
                    "targeted_dir": str(targeted)}, gen.stage(csv.parent / MANIFEST))
        gen.commit()
    except BaseException:
        gen.abort()
        raise
    logger.info("merged panel: %d rows x %d columns -> %s (+ .parquet, %s); ingest report %s", len(merged),
                merged.shape[1], csv, pkl, csv.parent / INGEST_REPORT)
    return merged


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python src/build_full_merged.py", description=__doc__.split("\n")[0])
    p.add_argument("--config", default=None, help=f"YAML config (default: {DEFAULT_CONFIG} if present)")
    p.add_argument("--periods", help="comma-separated periods, e.g. 1h,4h,1d")
    p.add_argument("--raw-dir", help="folder with raw data (Binance dumps or OHLCV files)")
    p.add_argument("--symbols", help="comma-separated symbols to build (default: all found)")
    p.add_argument("--horizons", help="comma-separated target horizons in bars, e.g. 1,4,24")
    p.add_argument("--calendar", choices=["auto", "24/7", "session", "fx", "equity"],
                   help="market calendar override (session: fx or equity, detected from the bars)")
    p.add_argument("--timezone", help="IANA zone of naive timestamps in the raw files (default UTC), e.g. "
                                      "America/New_York; DST is handled")
    p.add_argument("--out", help="data root for the outputs (default data): <out>/merged/full_merged.csv, ...")
    p.add_argument("--synthetic", action="store_true",
                   help="build the embedded synthetic market (generated into an empty raw folder)")
    p.add_argument("--no-wait", action="store_true", help="stop (exit 2) instead of waiting when another build "
                                                          "writes the same outputs")
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
    if args.timezone:
        overrides["timezone"] = args.timezone
    if args.out:
        overrides["data_root"] = args.out
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
    return guarded(lambda: build(_load(args), wait=not args.no_wait))


if __name__ == "__main__":
    raise SystemExit(main())
