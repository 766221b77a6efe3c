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


def assign_time_idx(panel: pd.DataFrame, period_delta: pd.Timedelta, calendar: Calendar,
                    max_closure: pd.Timedelta = DEFAULT_MAX_CLOSURE) -> pd.DataFrame:
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

    Returns
    -------
    DataFrame
        ``panel`` plus ``time_idx`` (int64) and ``gap_before`` (bool, False on a symbol's first bar).
    """
    out = panel.copy()
    ts = out["timestamp"]
    if calendar == "24/7":
        out["time_idx"] = ((ts - EPOCH) // period_delta).astype(np.int64)
    elif calendar == "session":
        trading = np.sort(ts.unique())
        out["time_idx"] = np.searchsorted(trading, ts.to_numpy()).astype(np.int64)
    else:
        raise DataError(f"unknown calendar {calendar!r}; use '24/7' or 'session'")
    first = out["symbol"].ne(out["symbol"].shift())
    jump = out["time_idx"].diff().gt(1)
    gap = jump
    if calendar == "session":
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
