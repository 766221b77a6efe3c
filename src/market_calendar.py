"""Market calendars: bar indices (``time_idx``) and gap flags (``gap_before``).

* ``24/7`` markets (crypto): ``time_idx`` counts bars of the period from the Unix epoch, so
  every missing bar is a jump in ``time_idx`` and sets ``gap_before``.
* ``session`` markets (stocks, futures, forex): closed nights, weekends and holidays are not
  missing data. ``time_idx`` numbers the panel's trading bars of that period consecutively
  (the union of all symbols' timestamps), so a symbol's ``time_idx`` only jumps when *it*
  lacks a bar that other symbols have. A closure longer than ``max_closure`` (default 4 days)
  also counts as a gap.

The calendar is detected from the data (:func:`detect_calendar`) and can be overridden.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from utils.errors import DataError

logger = logging.getLogger(__name__)

Calendar = Literal["24/7", "session"]
EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
DEFAULT_MAX_CLOSURE = pd.Timedelta(days=4)


def detect_calendar(timestamps: pd.Series | pd.DatetimeIndex) -> Calendar:
    """``'session'`` when weekends are (almost) absent, else ``'24/7'``.

    A 24/7 market has 2/7 (29%) of its bars on Saturday/Sunday; stock and forex data have
    next to none (forex opens Sunday evening, hence the 5% threshold).
    """
    ts = pd.DatetimeIndex(timestamps)
    if len(ts) == 0:
        raise DataError("cannot detect a market calendar from an empty series")
    weekend_share = float(np.mean(ts.dayofweek >= 5))
    return "session" if weekend_share < 0.05 else "24/7"


def fx_time_idx(ts: pd.Series, period: pd.Timedelta) -> np.ndarray:
    """Bar numbers on the FX calendar: period steps of the 17:00 New York session clock, weekends skipped.

    Every Monday-Friday trading day holds ``1 day / period`` slots, so a missing hour or day (a holiday
    included) is a jump, while the weekend is not. DST changes fall on the FX weekend, when the clock is idle.
    """
    clock = session_clock(ts, MarketSession(kind="fx", timezone=FX_TIMEZONE, day_start=FX_DAY_START))
    day = clock.dt.floor("D")
    busdays = np.busday_count(np.datetime64("1970-01-05"), day.to_numpy().astype("datetime64[D]"))
    per_day = max(int(pd.Timedelta(days=1) / period), 1)
    return (busdays * per_day + ((clock - day) // period).to_numpy()).astype(np.int64)


def assign_time_idx(panel: pd.DataFrame, period_delta: pd.Timedelta, calendar: Calendar,
                    max_closure: pd.Timedelta = DEFAULT_MAX_CLOSURE,
                    session: MarketSession | None = None, trading: np.ndarray | None = None) -> pd.DataFrame:
    """Return a copy of a one-period panel with ``time_idx`` and ``gap_before`` columns.

    Parameters
    ----------
    panel : DataFrame
        Bars of one period with ``symbol`` and ``timestamp`` columns, sorted by both.
    period_delta : Timedelta
        Bar length.
    calendar : {'24/7', 'session'}
        How to number bars (see module docstring).
    max_closure : Timedelta
        Session markets only: a closure longer than this is a gap.
    session : MarketSession, optional
        An FX session numbers bars on its own calendar (:func:`fx_time_idx`), so a single symbol's missing
        bars are jumps too; other session markets number the union of the panel's timestamps.

    Returns
    -------
    DataFrame
        ``panel`` plus ``time_idx`` (int64) and ``gap_before`` (bool, False on a symbol's first bar).
    """
    out = panel.copy()
    ts = out["timestamp"]
    if calendar == "24/7":
        out["time_idx"] = ((ts - EPOCH) // period_delta).astype(np.int64)
    elif calendar == "session" and session is not None and session.kind == "fx":
        out["time_idx"] = fx_time_idx(ts, period_delta)
    elif calendar == "session":
        stamps = pd.DatetimeIndex(ts).as_unit("ns").asi8
        grid = np.unique(stamps) if trading is None else np.unique(pd.DatetimeIndex(trading).as_unit("ns").asi8)
        out["time_idx"] = np.searchsorted(grid, stamps).astype(np.int64)
    else:
        raise DataError(f"unknown calendar {calendar!r}; use '24/7' or 'session'")
    first = out["symbol"].ne(out["symbol"].shift())
    jump = out["time_idx"].diff().gt(1)
    gap = jump
    if calendar == "session" and not (session is not None and session.kind == "fx"):
        gap = gap | ts.diff().gt(max_closure)
    out["gap_before"] = (gap & ~first).astype(bool)
    return out


def horizon_valid(time_idx: np.ndarray, gap_before: np.ndarray, symbol_codes: np.ndarray, h: int) -> np.ndarray:
    """Rows whose next ``h`` bars exist in the same symbol without crossing a gap.

    Used for targets: a horizon that runs past the data or over a gap must give NaN.
    """
    n = time_idx.size
    ok = np.zeros(n, dtype=bool)
    if h >= n:
        return ok
    same = symbol_codes[h:] == symbol_codes[:-h]
    contiguous = (time_idx[h:] - time_idx[:-h]) == h
    # any gap flag among rows t+1..t+h: windowed sum over the cumulative count
    c = np.concatenate([[0], np.cumsum(gap_before.astype(np.int64))])
    gaps_ahead = c[h + 1:] - c[1:n - h + 1]
    ok[:-h] = same & contiguous & (gaps_ahead == 0)
    return ok


# --------------------------------------------------------------------------- trading sessions

MarketKind = Literal["24/7", "fx", "equity"]
FX_TIMEZONE = "America/New_York"
#: The FX trading day starts at 17:00 New York (the day named Monday starts on Sunday at 17:00).
FX_DAY_START = pd.Timedelta(hours=-7)


@dataclass(frozen=True)
class MarketSession:
    """How a market's trading days are laid out, so that bars are binned on session boundaries.

    Attributes
    ----------
    kind : {'24/7', 'fx', 'equity'}
        24/7: bins are aligned to UTC midnight. fx: to 17:00 New York. equity: to the session open.
    timezone : str
        Zone of the session clock (UTC for 24/7).
    day_start : Timedelta
        Wall-clock time, from local midnight of the day a trading day is named after, at which it starts:
        -7h for FX (Sunday 17:00 opens Monday), the open (e.g. 9h30) for equities.
    session_length : Timedelta or None
        Equities: the regular session's length (a bin is complete when it holds the session's sub-bars).
    """

    kind: MarketKind = "24/7"
    timezone: str = "UTC"
    day_start: pd.Timedelta = pd.Timedelta(0)
    session_length: pd.Timedelta | None = None

    @property
    def calendar(self) -> Calendar:
        """The bar-numbering calendar of :func:`assign_time_idx`."""
        return "24/7" if self.kind == "24/7" else "session"

    def describe(self) -> str:
        """One line for logs and the build manifest."""
        if self.kind == "24/7":
            return "24/7 (UTC days)"
        if self.kind == "fx":
            return f"fx (trading day from 17:00 {self.timezone})"
        start = (pd.Timestamp(0) + self.day_start).strftime("%H:%M")
        length = f", {self.session_length}" if self.session_length is not None else ""
        return f"equity (session from {start} {self.timezone}{length})"


def session_clock(ts: pd.Series, session: MarketSession) -> pd.Series:
    """Naive times on the session clock: local wall time minus ``day_start``, so every trading day runs from
    00:00 of the day it is named after (bins are floors of this clock)."""
    if session.kind == "24/7":
        return ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts.dt.tz_convert(session.timezone).dt.tz_localize(None) - session.day_start


def expected_sub_bars(bin_clock: pd.Series, period: pd.Timedelta, base: pd.Timedelta,
                      session: MarketSession) -> np.ndarray:
    """Sub-bars of spacing ``base`` that a complete bin of ``period`` opening at ``bin_clock`` holds."""
    full = max(int(period / base), 1)
    if session.kind != "equity" or session.session_length is None:
        return np.full(len(bin_clock), full, dtype=np.int64)
    into_day = (bin_clock - bin_clock.dt.floor("D")).to_numpy()
    left = np.maximum(session.session_length.to_timedelta64() - into_day, base.to_timedelta64())
    span = np.minimum(left, period.to_timedelta64())
    return np.ceil(span / base.to_timedelta64()).astype(np.int64)


def detect_session(timestamps: pd.Series, base: pd.Timedelta, exchange_timezone: str = FX_TIMEZONE,
                   calendar: Literal["auto", "24/7", "session", "fx", "equity"] = "auto") -> MarketSession:
    """The market's session layout, from its bars (UTC timestamps of one or more symbols).

    24/7 when weekends trade (see :func:`detect_calendar`). Otherwise FX when intraday bars cover most of
    each weekday (>= 20 h), equities when they cover a shorter session, whose open and length are the most
    common first bar and span per day in ``exchange_timezone``. Daily or coarser bars need no session.
    """
    ts = pd.Series(pd.DatetimeIndex(timestamps))
    if calendar == "auto":
        calendar = detect_calendar(ts)
    if calendar == "24/7":
        return MarketSession()
    if base >= pd.Timedelta(days=1):
        return MarketSession(kind="equity" if calendar != "fx" else "fx",
                             timezone=FX_TIMEZONE if calendar == "fx" else exchange_timezone,
                             day_start=FX_DAY_START if calendar == "fx" else pd.Timedelta(0))
    local = ts.dt.tz_convert(exchange_timezone).dt.tz_localize(None)
    day = local.dt.floor("D")
    coverage = (local.groupby(day).size() * base).median()
    if calendar == "fx" or (calendar == "session" and coverage >= pd.Timedelta(hours=20)):
        return MarketSession(kind="fx", timezone=FX_TIMEZONE, day_start=FX_DAY_START)
    first = (local - day).groupby(day).min()
    last = (local - day).groupby(day).max()
    open_ = first.mode().min()
    length = (last - first + base).mode().max()
    return MarketSession(kind="equity", timezone=exchange_timezone, day_start=open_, session_length=length)


def calendar_missing(timestamps: pd.Series, period: pd.Timedelta, session: MarketSession,
                     trading: pd.DatetimeIndex | np.ndarray | None = None) -> int:
    """Bars of ``period`` missing from one symbol's bars, counted against the market's calendar.

    24/7: every period step between the first and last bar. FX: every step of the session clock on Monday
    to Friday (weekends are closed, holidays count as missing). Equities: the panel's trading bars
    (``trading``, the union over symbols) inside the symbol's span, so closures are never "missing".
    """
    ts = pd.Series(pd.DatetimeIndex(timestamps)).sort_values()
    if len(ts) < 2:
        return 0
    if session.kind == "24/7":
        steps = (ts.iloc[-1] - ts.iloc[0]) // period + 1
        return int(steps - len(ts))
    if session.kind == "fx":  # the calendar's slot numbers: the span in slots less the bars present
        idx = fx_time_idx(ts.reset_index(drop=True), period)
        return int(idx[-1] - idx[0] + 1 - len(ts))
    if trading is None:
        return 0
    grid = pd.DatetimeIndex(trading).asi8
    lo, hi = pd.DatetimeIndex(ts).asi8[[0, -1]]
    inside = grid[(grid >= lo) & (grid <= hi)]
    return int(len(inside) - len(ts))
