"""The build's three passes, each one symbol at a time, so memory holds a few copies of one symbol.

1. :func:`stage_native` reads, cleans and checks each symbol's raw bars and parks them in a scratch folder
   (keeping only their timestamps, for the market's session layout).
2. :func:`stage_periods` resamples each symbol to every period and parks the bars; the union of each
   period's timestamps (an equity market's trading bars) is all that is kept.
3. :func:`stage_partitions` computes indicators, bar numbers and targets per (period, symbol) and writes each
   as one partition of the merged panel (``utils.partitioned``), features as float32 (:func:`float32_columns`).

Only the ingest report rows, suspected ticks and timestamps stay in memory between symbols.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from src.bars import EXTRA_BAR_COLUMNS, IngestReport, resample_ohlcv, suspect_ticks
from src.build_config import BuildConfig
from src.generate_targets_auto import make_targets
from src.indicating import LONGEST_WINDOW, PRICE_COLUMNS, indicating_main
from src.market_calendar import MarketSession, assign_time_idx, calendar_missing, detect_session
from src.market_data import RawInventory, iter_price_bars
from src.merging import order_columns
from utils.io import write_csv_table
from utils.partitioned import write_partition
from utils.timeline import ID_COLUMNS, is_target, period_delta

logger = logging.getLogger(__name__)


def _stamps(ts: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(ts).as_unit("ns").asi8


def _utc(stamps: list[np.ndarray]) -> pd.DatetimeIndex:
    values = np.concatenate(stamps) if stamps else np.array([], dtype=np.int64)
    return pd.to_datetime(values, utc=True)


@dataclass
class NativeStage:
    """Pass 1: per symbol, its native spacing, cleaning report and suspected ticks; the bars are parked."""

    scratch: Path
    reports: dict[str, IngestReport] = field(default_factory=dict)
    ticks: dict[str, pd.DataFrame] = field(default_factory=dict)
    stamps: list[np.ndarray] = field(default_factory=list)

    @property
    def symbols(self) -> list[str]:
        """Symbols read, sorted."""
        return sorted(self.reports)

    def bars(self, symbol: str) -> pd.DataFrame:
        """One symbol's cleaned native bars."""
        return pd.read_parquet(self.scratch / "native" / f"{symbol}.parquet")

    def session(self, cfg: BuildConfig) -> MarketSession:
        """The market's session layout, detected from every symbol's bars (or as configured)."""
        finest = min(period_delta(r.spacing) for r in self.reports.values())
        return detect_session(pd.Series(_utc(self.stamps)), finest, cfg.exchange_timezone, cfg.calendar)


def stage_native(inv: RawInventory, cfg: BuildConfig, scratch: Path) -> NativeStage:
    """Pass 1: read, check and clean each symbol's raw bars, park them under ``scratch/native``."""
    out = NativeStage(scratch)
    (scratch / "native").mkdir(parents=True, exist_ok=True)
    for sym, bars, report in tqdm(iter_price_bars(inv, cfg.symbols, cfg.timezone, spill=scratch / "generic"),
                                  desc="ingest", unit="symbol"):
        flagged = suspect_ticks(bars, cfg.bad_tick_multiple)
        if len(flagged):
            logger.warning("%s: %d suspected bad tick(s) (a close move > %g x the recent bar range), kept; first at "
                           "%s (see bad_ticks.csv)", sym, len(flagged), cfg.bad_tick_multiple,
                           flagged["timestamp"].iloc[0])
        bars.to_parquet(scratch / "native" / f"{sym}.parquet", index=False)
        out.reports[sym], out.ticks[sym] = report, flagged
        out.stamps.append(_stamps(bars["timestamp"]))
    return out


@dataclass
class PeriodStage:
    """Pass 2: per period, the symbols built and their timestamps' union; the ingest report rows."""

    scratch: Path
    symbols: dict[str, list[str]] = field(default_factory=dict)
    stamps: dict[str, list[np.ndarray]] = field(default_factory=dict)
    report: list[dict] = field(default_factory=list)

    def bars(self, period: str, symbol: str) -> pd.DataFrame:
        """One symbol's bars of ``period``."""
        return pd.read_parquet(self.scratch / period / f"{symbol}.parquet")

    def trading(self, period: str) -> pd.DatetimeIndex:
        """Every timestamp any symbol has in ``period`` (an equity market's trading bars), sorted."""
        return pd.to_datetime(np.unique(np.concatenate(self.stamps[period])), utc=True)

    @property
    def rows(self) -> int:
        """Rows of the merged panel."""
        return int(sum(a.size for parts in self.stamps.values() for a in parts))


def _period_bars(sym: str, frame: pd.DataFrame, spacing: str, tf: str, session: MarketSession,
                 cfg: BuildConfig) -> tuple[pd.DataFrame | None, dict]:
    """One symbol's bars of period ``tf`` (as-is at its native spacing, resampled above) and its report row.

    Partial bins are dropped (counted); a series shorter than the longest indicator window is skipped.
    """
    delta, base = period_delta(tf), period_delta(spacing)
    row = {"symbol": sym, "period": tf, "spacing": spacing, "partial_bins_dropped": 0}
    if delta < base:
        return None, {**row, "status": f"skipped: native spacing {spacing} is coarser than {tf}"}
    tf_bars, dropped = (frame, 0) if delta == base else resample_ohlcv(frame, tf, session, base, cfg.min_bin_share)
    row["partial_bins_dropped"] = dropped
    min_bars = cfg.min_bars or LONGEST_WINDOW
    if len(tf_bars) < min_bars:
        logger.warning("%s: %d %s bar(s), fewer than the longest indicator window (%d); skipped", sym,
                       len(tf_bars), tf, min_bars)
        return None, {**row, "bars": len(tf_bars), "status": f"skipped: {len(tf_bars)} bars < {min_bars}"}
    return tf_bars, {**row, "bars": len(tf_bars), "status": "built"}


def stage_periods(native: NativeStage, cfg: BuildConfig, session: MarketSession) -> PeriodStage:
    """Pass 2: each symbol's bars of every period, parked under ``scratch/<period>``."""
    out = PeriodStage(native.scratch)
    coarse: dict[str, list[str]] = {tf: [] for tf in cfg.periods}
    for tf in cfg.periods:
        (native.scratch / tf).mkdir(parents=True, exist_ok=True)
    for sym in tqdm(native.symbols, desc="resample", unit="symbol"):
        frame = native.bars(sym)
        for tf in cfg.periods:
            tf_bars, row = _period_bars(sym, frame, native.reports[sym].spacing, tf, session, cfg)
            out.report.append(row)
            if tf_bars is None:
                if row["status"].startswith("skipped: native"):
                    coarse[tf].append(sym)
                continue
            tf_bars.to_parquet(native.scratch / tf / f"{sym}.parquet", index=False)
            out.symbols.setdefault(tf, []).append(sym)
            out.stamps.setdefault(tf, []).append(_stamps(tf_bars["timestamp"]))
    for tf, syms in coarse.items():
        if syms:
            logger.warning("%s: not built for %d symbol(s) whose bars are coarser: %s", tf, len(syms),
                           ", ".join(syms[:10]) + (" ..." if len(syms) > 10 else ""))
    return out


def _segments(bars: pd.DataFrame, sym: str, tf: str, session: MarketSession, cfg: BuildConfig,
              trading: pd.DatetimeIndex) -> np.ndarray:
    """Segment numbers of one symbol's bars: a gap longer than ``max_gap_bars`` starts a new one."""
    idx = assign_time_idx(bars[["timestamp"]].assign(symbol=sym), period_delta(tf), session.calendar,
                          pd.Timedelta(days=cfg.max_closure_days), session, trading=trading)
    return idx["time_idx"].diff().gt(cfg.gap_bars(tf)).cumsum().to_numpy()


#: Columns that keep float64 although numeric: prices and bar columns (precision matters for returns).
FLOAT64_KEPT = frozenset([*ID_COLUMNS, *PRICE_COLUMNS, *EXTRA_BAR_COLUMNS])


def float32_columns(frame: pd.DataFrame) -> list[str]:
    """The float64 feature columns of ``frame`` to store as float32 (prices, bar columns and targets keep float64).

    Features are model inputs, read as float32 by training; float32 halves the panel on disk and in memory.
    """
    return [c for c, t in frame.dtypes.items() if t == np.float64 and c not in FLOAT64_KEPT and not is_target(c)]


@dataclass
class PanelInfo:
    """What pass 3 wrote: the partitions in panel order, the union of their columns (ordered) and rows."""

    partitions: list[tuple[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: int = 0

    def add(self, period: str, symbol: str, frame: pd.DataFrame) -> None:
        """Record one written partition."""
        self.partitions.append((period, symbol))
        seen = set(self.columns)
        self.columns += [c for c in frame.columns if c not in seen]
        self.rows += len(frame)

    def ordered_columns(self) -> list[str]:
        """Ids first, then the other columns as first seen, targets last (the merged panel's order)."""
        return list(order_columns(pd.DataFrame(columns=self.columns)).columns)


def _partition(periods: PeriodStage, tf: str, sym: str, session: MarketSession, cfg: BuildConfig,
               trading: pd.DatetimeIndex, row: dict) -> pd.DataFrame:
    """One (period, symbol) of the merged panel: indicators, bar numbers, targets; fills its report row."""
    bars = periods.bars(tf, sym)
    segment = _segments(bars, sym, tf, session, cfg, trading)
    row["segments"] = int(segment.max()) + 1
    indicated = indicating_main(tf, {sym: bars.assign(segment=segment)})
    panel = assign_time_idx(indicated, period_delta(tf), session.calendar, pd.Timedelta(days=cfg.max_closure_days),
                            session, trading=trading)
    row["missing_bars"] = calendar_missing(panel["timestamp"], period_delta(tf), session, trading)
    row["gaps"] = int(panel["gap_before"].sum())
    return order_columns(pd.concat([panel, make_targets(panel, cfg.horizons)], axis=1))


def stage_partitions(periods: PeriodStage, cfg: BuildConfig, session: MarketSession, dataset: Path,
                     targeted: Path | None) -> PanelInfo:
    """Pass 3: write each (period, symbol) partition of the merged panel under ``dataset``.

    ``targeted`` (the per-symbol CSV export folder) also gets ``<tf>/<SYMBOL>_<tf>.csv`` when given.
    """
    info = PanelInfo()
    rows = {(r["symbol"], r["period"]): r for r in periods.report}
    built = [tf for tf in cfg.periods if periods.symbols.get(tf)]
    todo = [(tf, sym) for tf in built for sym in sorted(periods.symbols[tf])]
    trading = {tf: periods.trading(tf) for tf in built}
    for tf, sym in tqdm(todo, desc="indicators+targets", unit="series"):
        frame = _partition(periods, tf, sym, session, cfg, trading[tf], rows[(sym, tf)])
        table = write_partition(frame, dataset, tf, sym, float32_columns(frame))
        if targeted is not None:  # the export holds what the dataset holds (float32 features)
            write_csv_table(table.add_column(0, "symbol", pa.array([sym] * len(frame), pa.string()))
                            .add_column(1, "period", pa.array([tf] * len(frame), pa.string())),
                            targeted / tf / f"{sym}_{tf}.csv")
        info.add(tf, sym, frame)
    return info
