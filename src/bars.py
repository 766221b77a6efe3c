"""Bars as frames: the native spacing, cleaning (duplicates, order, gaps), session-aware resampling, bad ticks.

Pure functions on ``timestamp, open, high, low, close, volume`` frames; reading files is :mod:`src.market_data`'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from src.market_calendar import MarketSession, expected_sub_bars, session_clock
from utils.errors import DataError
from utils.timeline import PERIODS, period_delta

logger = logging.getLogger(__name__)

OHLCV = ["open", "high", "low", "close", "volume"]
# Optional kline columns carried into the panel when present.
EXTRA_BAR_COLUMNS = ["quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume"]

#: Native bar spacings the build accepts: the periods themselves and spacings that resample to them.
SUPPORTED_SPACINGS = ("1m", "5m", "15m", "30m", "1h", "2h", "4h", "1d")


def infer_period(timestamps: pd.Series | pd.DatetimeIndex, source: str = "data") -> str:
    """Label of the native bar spacing of ``timestamps``: the most common step between consecutive rows.

    The most common step, not the median, so that closures (weekends, nights, holidays) and gaps do not
    move it. A spacing that is not one of :data:`SUPPORTED_SPACINGS` is an error: labelling weekly or
    monthly bars with the nearest period would produce a panel of gap flags and no targets.

    Raises
    ------
    DataError
        Fewer than 2 distinct timestamps, or an unsupported spacing (naming ``source`` and the spacing).
    """
    ts = pd.DatetimeIndex(timestamps).sort_values()
    steps = pd.Series(ts[1:] - ts[:-1])
    steps = steps[steps > pd.Timedelta(0)]
    if steps.empty:
        raise DataError(f"{source}: cannot infer the bar spacing from fewer than 2 distinct timestamps")
    step = steps.mode().min()
    by_delta = {pd.Timedelta(PERIODS[p]): p for p in SUPPORTED_SPACINGS}
    if step not in by_delta:
        raise DataError(f"{source}: unsupported bar spacing {step} (most common step between rows); supported "
                        f"native spacings: {list(SUPPORTED_SPACINGS)}, which resample to 1h/4h/1d. Resample the "
                        f"file to one of them first (weekly or monthly bars cannot make these periods)")
    return by_delta[step]


@dataclass
class IngestReport:
    """What cleaning did to one symbol's bars (logged, and kept for audits)."""

    source: str
    rows: int = 0
    duplicates_dropped: int = 0
    unsorted_rows: int = 0
    gaps: int = 0
    missing_bars: int = 0
    spacing: str = ""


def clean_bars(bars: pd.DataFrame, source: str, step: pd.Timedelta | None = None) -> tuple[pd.DataFrame, IngestReport]:
    """Sort, de-duplicate and report gaps for one symbol's bars (no filling).

    Parameters
    ----------
    bars : DataFrame
        Validated bars with a ``timestamp`` column.
    source : str
        Name used in log messages and the report.
    step : Timedelta, optional
        Expected bar spacing; gaps are spacings larger than this. Inferred if omitted.
    """
    report = IngestReport(source=source, rows=len(bars))
    ts = bars["timestamp"]
    unsorted = int((ts.diff() < pd.Timedelta(0)).sum())
    if unsorted:
        report.unsorted_rows = unsorted
        logger.warning("%s: %d row(s) out of time order; sorted by timestamp", source, unsorted)
        bars = bars.sort_values("timestamp", kind="stable")
    dup = bars["timestamp"].duplicated(keep="last")
    if dup.any():
        report.duplicates_dropped = int(dup.sum())
        logger.warning("%s: %d duplicated timestamp(s) dropped (kept the last occurrence)",
                       source, report.duplicates_dropped)
        bars = bars.loc[~dup]
    bars = bars.reset_index(drop=True)
    if len(bars) > 1:
        step = step or period_delta(infer_period(bars["timestamp"], source))
        diffs = bars["timestamp"].diff().iloc[1:]
        gaps = diffs > step
        report.gaps = int(gaps.sum())
        report.missing_bars = int((diffs[gaps] / step).round().sum() - report.gaps)
    report.rows = len(bars)
    return bars, report


def resample_ohlcv(bars: pd.DataFrame, period: str, session: MarketSession | None = None,
                   base: pd.Timedelta | None = None, min_bin_share: float = 0.5) -> tuple[pd.DataFrame, int]:
    """Aggregate bars into ``period`` bars on the market's session boundaries.

    Open first, high max, low min, close last, volumes summed. Bins are floors of the session clock
    (:func:`~src.market_calendar.session_clock`: UTC days for 24/7 markets, the 17:00 New York trading day
    for FX, the session open for equities), so no bar mixes two trading days and none is a weekend stub.
    Each bin is labelled with its open time in UTC. A bin holding less than ``min_bin_share`` of the
    sub-bars a complete one has (anywhere: at the series' edges or beside a gap) is dropped, never kept as
    if complete.

    Returns
    -------
    (bars, dropped)
        The resampled bars and the number of partial bins dropped.
    """
    if bars.empty:
        return bars.copy(), 0
    session = session or MarketSession()
    delta = period_delta(period)
    base = base or period_delta(infer_period(bars["timestamp"]))
    clock = session_clock(bars["timestamp"], session)
    key = clock.dt.floor(delta)
    # UTC open of each row's bin: its own time minus how far into the bin it lies on the session clock.
    opens = bars["timestamp"] - (clock - key)
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    agg.update({c: "sum" for c in EXTRA_BAR_COLUMNS if c in bars.columns})
    grouped = bars.assign(_open=opens.to_numpy()).groupby(key.to_numpy(), sort=True)
    out = grouped.agg({**agg, "_open": "first"})
    counts = grouped.size().to_numpy()
    expected = expected_sub_bars(pd.Series(out.index), delta, base, session)
    keep = counts >= np.ceil(min_bin_share * expected)
    out = out.loc[keep]
    out = out.rename(columns={"_open": "timestamp"}).reset_index(drop=True)
    out["timestamp"] = pd.DatetimeIndex(out["timestamp"]).tz_convert("UTC")
    return out[["timestamp", *agg]], int((~keep).sum())


def suspect_ticks(bars: pd.DataFrame, multiple: float = 25.0, window: int = 48) -> pd.DataFrame:
    """Bars whose close moves more than ``multiple`` times the recent typical bar range (suspected bad ticks).

    The typical range is the median of ``log(high/low)`` over the previous ``window`` bars (strictly
    earlier, so the spike does not hide itself). Reported, not removed: a real crash looks the same.

    Returns
    -------
    DataFrame
        ``timestamp, close, log_move, typical_range, ratio`` of the flagged bars (empty when none).
    """
    close = bars["close"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        move = np.abs(np.diff(np.log(close), prepend=np.nan))
        rng = pd.Series(np.log(bars["high"].to_numpy(dtype=np.float64) / bars["low"].to_numpy(dtype=np.float64)))
        typical = rng.shift(1).rolling(window, min_periods=max(window // 4, 2)).median().to_numpy()
        ratio = move / typical
    flagged = np.flatnonzero((typical > 0) & (ratio > multiple))
    return pd.DataFrame({"timestamp": bars["timestamp"].to_numpy()[flagged], "close": close[flagged],
                         "log_move": move[flagged], "typical_range": typical[flagged], "ratio": ratio[flagged]})


# --------------------------------------------------------------------------- discovery
