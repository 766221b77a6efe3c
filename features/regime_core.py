"""Slow regime fields for the stacking layer, point-in-time.

:func:`regime_features` takes the merged long panel (``symbol, period, timestamp, open/high/low/close,
volume`` and, when present, ``funding_rate`` and ``oi_value``) and returns a new frame with the key
columns and the ``regime_*`` columns below. Every field is computed per (symbol, period) from bars up
to ``t`` and then shifted by one bar, so the value on row ``t`` uses nothing later than bar ``t-1``:
the Z-Combiner may read it at the decision time of bar ``t`` even if bar ``t``'s own row is revised.

============================  ================================================================
``regime_vol_level``          std of 1-bar log returns over ``vol`` bars
``regime_vol_pct``            percentile of that level among the last ``pct`` bars (0..1)
``regime_volume_z``           z-score of log volume against the last ``pct`` bars
``regime_momentum``           log return over ``momentum`` bars
``regime_atr_slope``          log change of ATR(``atr``) over ``slope`` bars
``regime_gap_high``           (close - highest high of ``structure`` bars) / ATR  (<= 0)
``regime_gap_low``            (close - lowest low of ``structure`` bars) / ATR    (>= 0)
``regime_funding_slope``      change of the ``slope``-bar mean funding rate over ``slope`` bars
``regime_oi_slope``           log change of open interest over ``slope`` bars
============================  ================================================================

The funding and open-interest fields are NaN when their source column is absent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from utils.timeline import ROW_KEY

KEYS = list(ROW_KEY)
REGIME_COLUMNS = ["regime_vol_level", "regime_vol_pct", "regime_volume_z", "regime_momentum", "regime_atr_slope",
                  "regime_gap_high", "regime_gap_low", "regime_funding_slope", "regime_oi_slope"]


@dataclass(frozen=True)
class RegimeWindows:
    """Window lengths in bars (the same counts for every period)."""

    vol: int = 48
    pct: int = 240
    momentum: int = 48
    atr: int = 14
    slope: int = 24
    structure: int = 48


def _rolling(grouped: pd.core.groupby.SeriesGroupBy, n: int, how: str, min_periods: int | None = None) -> pd.Series:
    out = getattr(grouped.rolling(n, min_periods=min_periods or n), how)()
    return out.reset_index(level=list(range(out.index.nlevels - 1)), drop=True)


def regime_features(panel: pd.DataFrame, windows: RegimeWindows | None = None) -> pd.DataFrame:
    """Regime fields per row of ``panel`` (same row order; ``panel`` is not modified).

    Parameters
    ----------
    panel : DataFrame
        Long panel with ``symbol, period, timestamp, high, low, close, volume``; optional
        ``funding_rate`` and ``oi_value``. Rows need not be sorted.
    windows : RegimeWindows, optional
        Window lengths in bars.

    Returns
    -------
    DataFrame
        ``symbol, period, timestamp`` (and ``time_idx`` when present) plus :data:`REGIME_COLUMNS`,
        indexed like ``panel``.
    """
    w = windows or RegimeWindows()
    order = panel.sort_values(KEYS).index
    df = panel.loc[order]
    groups = [df["symbol"], df["period"]]
    log_close = np.log(df["close"].astype(np.float64))
    prev_close = df.groupby(groups, sort=False)["close"].shift(1)
    ret = log_close - np.log(prev_close)
    out = pd.DataFrame(index=df.index)
    out["regime_vol_level"] = _rolling(ret.groupby(groups, sort=False), w.vol, "std")
    out["regime_vol_pct"] = out["regime_vol_level"].groupby(groups, sort=False).rolling(w.pct, min_periods=w.vol) \
        .rank(pct=True).reset_index(level=[0, 1], drop=True)
    log_vol = np.log1p(df["volume"].astype(np.float64))
    g_vol = log_vol.groupby(groups, sort=False)
    out["regime_volume_z"] = (log_vol - _rolling(g_vol, w.pct, "mean", w.vol)) / _rolling(g_vol, w.pct, "std", w.vol)
    out["regime_momentum"] = log_close - log_close.groupby(groups, sort=False).shift(w.momentum)
    true_range = pd.concat([df["high"] - df["low"], (df["high"] - prev_close).abs(), (df["low"] - prev_close).abs()],
                           axis=1).max(axis=1, skipna=False)
    atr = _rolling(true_range.groupby(groups, sort=False), w.atr, "mean")
    log_atr = np.log(atr.where(atr > 0))
    out["regime_atr_slope"] = log_atr - log_atr.groupby(groups, sort=False).shift(w.slope)
    high = _rolling(df["high"].groupby(groups, sort=False), w.structure, "max")
    low = _rolling(df["low"].groupby(groups, sort=False), w.structure, "min")
    out["regime_gap_high"] = (df["close"] - high) / atr.where(atr > 0)
    out["regime_gap_low"] = (df["close"] - low) / atr.where(atr > 0)
    if "funding_rate" in df:
        ma = _rolling(df["funding_rate"].astype(np.float64).groupby(groups, sort=False), w.slope, "mean")
        out["regime_funding_slope"] = ma - ma.groupby(groups, sort=False).shift(w.slope)
    else:
        out["regime_funding_slope"] = np.nan
    if "oi_value" in df:
        log_oi = np.log(df["oi_value"].astype(np.float64).where(df["oi_value"] > 0))
        out["regime_oi_slope"] = log_oi - log_oi.groupby(groups, sort=False).shift(w.slope)
    else:
        out["regime_oi_slope"] = np.nan
    # point in time: row t carries what was known at the close of bar t-1
    shifted = out.groupby(groups, sort=False).shift(1).replace([np.inf, -np.inf], np.nan)
    keys = [c for c in KEYS + ["time_idx"] if c in df]
    result = pd.concat([df[keys], shifted[REGIME_COLUMNS]], axis=1)
    return result.loc[panel.index]
