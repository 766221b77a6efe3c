"""Raw market data -> indicators -> targets -> merged long panel.

Usage::

    python src/build_full_merged.py [--periods 1h,4h,1d] [--raw-dir data/raw] [--symbols BTCUSDT,ETHUSDT]
        [--out DIR] [--timezone UTC] [--calendar auto] [--export auto|none|csv,pkl,parquet] [--synthetic]

``--synthetic`` builds the embedded synthetic market (generated into the raw folder when that is empty, reused
when it already holds it); without it, a missing raw folder or one with no recognised price file is an error
that lists what was found. Nothing else is ever written into the raw folder.
Outputs, under the data root (``--out``, default ``data``): the merged panel as a partitioned parquet dataset
``merged/full_merged/period=<tf>/symbol=<SYMBOL>/`` (features float32, built one symbol at a time, so memory
does not grow with the universe); its exports (``--export``; by default all of them for panels up to 2M rows):
``crypto_targeted_and_indicated/<tf>/`` (csv), ``merged/full_merged.csv`` (csv), ``merged/full_merged.parquet``
(parquet), ``pkl_merged/full_merged.pkl`` (pkl); and beside the merged CSV the
``ingest_report.csv`` (per symbol and period: partial bins dropped, bars missing against the market's
calendar, gap segments, suspected bad ticks), ``bad_ticks.csv`` and ``build_manifest.json`` (the raw
folder, symbols and periods of this build, read by the fusion). All of them are one generation: staged,
then swapped in together.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from src.build_config import AUTO_EXPORT_MAX_ROWS, DEFAULT_CONFIG, EXPORTS, BuildConfig
from src.build_stages import NativeStage, PeriodStage, stage_native, stage_partitions, stage_periods
from src.market_calendar import MarketSession
from src.market_data import discover_raw
from src.merging import BAD_TICKS, INGEST_REPORT, MANIFEST, export_panel
from src.synthetic_market import MarketSpec, generate
from utils.cli import guarded
from utils.config import from_mapping, load_config
from utils.errors import DataError, ProjectError
from utils.io import Generation, remove_stale, write_csv, write_json
from utils.locks import output_lock
from utils.logging_setup import configure_logging
from utils.partitioned import read_partitioned, write_meta

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


def _ingest_report(native: NativeStage, period_rows: list[dict]) -> pd.DataFrame:
    """One row per (symbol, period): what cleaning, resampling and the calendar did."""
    frame = pd.DataFrame(period_rows)
    base = pd.DataFrame([{"symbol": s, "source_rows": r.rows + r.duplicates_dropped,
                          "duplicates_dropped": r.duplicates_dropped, "unsorted_rows": r.unsorted_rows,
                          "bad_ticks": len(native.ticks.get(s, ()))} for s, r in native.reports.items()])
    cols = ["symbol", "period", "status", "spacing", "source_rows", "duplicates_dropped", "unsorted_rows", "bars",
            "partial_bins_dropped", "missing_bars", "gaps", "segments", "bad_ticks"]
    out = frame.merge(base, on="symbol", how="left")
    return out.reindex(columns=cols).sort_values(["period", "symbol"], key=_period_key(frame), ignore_index=True)


def _period_key(frame: pd.DataFrame):
    order = {p: i for i, p in enumerate(dict.fromkeys(frame["period"]))}
    return lambda col: col.map(order) if col.name == "period" else col


@dataclass
class BuildResult:
    """What a build wrote: the partitioned panel (read it with :meth:`read`), its size and the exports."""

    dataset: Path
    rows: int
    columns: list[str]
    periods: list[str]
    symbols: list[str]
    exports: list[str]

    def read(self, **kwargs) -> pd.DataFrame:
        """The panel, or the part named by ``periods`` / ``symbols`` / ``columns`` (see ``read_partitioned``)."""
        return read_partitioned(self.dataset, **kwargs)


def build(cfg: BuildConfig, wait: bool = True) -> BuildResult:
    """Run the whole build for ``cfg`` as one generation, holding the lock of its merged-panel folder."""
    with output_lock(cfg.merged_csv_path.parent, wait, "build"):
        return _build(cfg)


def _build(cfg: BuildConfig) -> BuildResult:
    """Run the whole build for ``cfg`` as one generation, one symbol at a time (see ``src.build_stages``).

    Every output (the partitioned panel, its exports, the ingest report and the build manifest) is staged
    beside its destination and swapped in only when all are written: a failed or killed build leaves the
    previous generation whole, and only this build's symbols are in the panel.
    """
    started = time.perf_counter()
    inv = _ensure_raw(cfg)
    for folder in {cfg.merged_csv_path.parent, cfg.merged_pkl_path.parent, cfg.targeted_path.parent}:
        for path in remove_stale(folder):
            logger.info("removed the leftover %s of an earlier, interrupted run", path)
    cfg.merged_csv_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".build-scratch-{os.getpid()}-", dir=cfg.merged_csv_path.parent) as tmp:
        native = stage_native(inv, cfg, Path(tmp))
        if not native.reports:
            raise DataError(f"no price bars found under {cfg.raw_dir}")
        session = native.session(cfg)
        logger.info("%d symbols; market: %s%s", len(native.symbols), session.describe(),
                    " (detected)" if cfg.calendar == "auto" else "")
        periods = stage_periods(native, cfg, session)
        if not periods.symbols:
            raise DataError(f"none of the periods {cfg.periods} can be built from the data under {cfg.raw_dir} "
                            f"(see the warnings above)")
        result = _write_generation(cfg, native, periods, session)
    logger.info("done in %.1f s: %d rows, %d columns, periods %s, %d symbols -> %s", time.perf_counter() - started,
                result.rows, len(result.columns), result.periods, len(result.symbols), result.dataset)
    return result


def _log_report(report: pd.DataFrame, session: MarketSession) -> None:
    for row in report.itertuples():
        if row.status == "built" and (row.missing_bars or row.partial_bins_dropped or row.segments > 1):
            logger.info("%s %s: %d bars, %d missing against the %s calendar, %d partial bin(s) dropped, %d "
                        "segment(s)", row.symbol, row.period, row.bars, row.missing_bars, session.kind,
                        row.partial_bins_dropped, row.segments)


def _write_generation(cfg: BuildConfig, native: NativeStage, periods: PeriodStage,
                      session: MarketSession) -> BuildResult:
    """Stage every output, then swap them in together (see :class:`utils.io.Generation`)."""
    csv, pkl, targeted, dataset = cfg.merged_csv_path, cfg.merged_pkl_path, cfg.targeted_path, cfg.dataset_path
    exports = cfg.exports(periods.rows)
    if cfg.export is None and not exports:
        logger.info("%s rows: the single-file exports (full_merged.csv / .pkl / .parquet, per-symbol CSVs) are off "
                    "above %s rows; the panel is the partitioned dataset %s (pass --export csv,pkl,parquet to "
                    "write them anyway)", f"{periods.rows:,}", f"{AUTO_EXPORT_MAX_ROWS:,}", dataset)
    gen = Generation("build")
    try:
        staged = gen.stage(dataset)
        info = stage_partitions(periods, cfg, session, staged, gen.stage(targeted) if "csv" in exports else None)
        columns = info.ordered_columns()
        write_meta(staged, info.partitions, columns, info.rows)
        export_panel(staged, {"csv": gen.stage(csv), "pkl": gen.stage(pkl),
                              "parquet": gen.stage(csv.with_suffix(".parquet"))}, exports)
        for name, dest in (("csv", csv), ("csv", targeted), ("pkl", pkl), ("parquet", csv.with_suffix(".parquet"))):
            if name not in exports and dest.exists():
                gen.drop(dest)  # an export of an earlier generation would disagree with this panel
        report = _ingest_report(native, periods.report)
        _log_report(report, session)
        write_csv(report, gen.stage(csv.parent / INGEST_REPORT))
        write_csv(_tick_frame(native.ticks), gen.stage(csv.parent / BAD_TICKS))
        symbols = sorted({s for _, s in info.partitions})
        built = list(dict.fromkeys(p for p, _ in info.partitions))
        write_json({"raw_dir": str(Path(cfg.raw_dir).resolve()), "symbols": symbols, "periods": built,
                    "market": session.describe(), "calendar": session.calendar, "timezone": cfg.timezone,
                    "horizons": list(cfg.horizons), "synthetic": cfg.synthetic.enabled,
                    "created_utc": pd.Timestamp.now(tz="UTC").isoformat(), "merged_csv": str(csv),
                    "dataset": str(dataset), "exports": exports, "targeted_dir": str(targeted)},
                   gen.stage(csv.parent / MANIFEST))
        gen.commit()
    except BaseException:
        gen.abort()
        raise
    logger.info("merged panel: %d rows x %d columns -> %s%s; ingest report %s", info.rows, len(columns), dataset,
                f" (exports: {', '.join(exports)})" if exports else "", csv.parent / INGEST_REPORT)
    return BuildResult(dataset, info.rows, columns, built, symbols, exports)


def _tick_frame(ticks: dict[str, pd.DataFrame]) -> pd.DataFrame:
    flagged = [t.assign(symbol=s) for s, t in ticks.items() if len(t)]
    frame = pd.concat(flagged, ignore_index=True) if flagged else pd.DataFrame(
        columns=["timestamp", "close", "log_move", "typical_range", "ratio", "symbol"])
    return frame[["symbol", *[c for c in frame.columns if c != "symbol"]]]


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
    p.add_argument("--export", help=f"single-file forms of the panel beside the partitioned dataset: a comma list of "
                                    f"{','.join(EXPORTS)} (csv: full_merged.csv and the per-symbol CSVs), 'none', "
                                    f"or 'auto' (default: all up to {AUTO_EXPORT_MAX_ROWS:,} rows, none above)")
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
    if args.export and args.export != "auto":
        overrides["export"] = [] if args.export == "none" else [e.strip() for e in args.export.split(",") if e.strip()]
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
