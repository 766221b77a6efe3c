"""Technical feature set for one period: ``indicating_main(tf, bars)``.

Every feature at row ``t`` uses only bars up to and including ``t`` (the row describes the bar
that closes at ``timestamp + period``). Groups: returns, volatility (realized, Parkinson,
Garman-Klass, Rogers-Satchell, ATR), momentum oscillators (RSI, MACD, STOCH, CCI, WILLR, ROC,
MFI), channels (Bollinger, Keltner, Donchian) with position-in-channel, trend (ADX/DI, moving
averages, Ichimoku without the future-shifted chikou span), volume flow (OBV, CMF, VWAP
distance, taker ratio), candlestick patterns, tail shape, previous-day classic pivots, calendar
features and regime hints.

Key columns are then shifted by one bar and normalized over a trailing 48-bar window into
``<col>_zn48`` (z-score) and ``<col>_mm48`` (min-max position), so the normalized versions only
summarize strictly earlier bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from src import indicators as ind
from src.bars import EXTRA_BAR_COLUMNS
from utils.errors import DataError
from utils.timeline import feature_columns

NORM_WINDOW = 48
PRICE_COLUMNS = ["open", "high", "low", "close", "volume"]
# Columns normalized into _zn48 / _mm48 (after a one-bar shift).
KEY_COLUMNS = [
    "close", "log_volume", "ret_1", "ret_4", "ret_24", "rv_24", "parkinson_24", "gk_24", "atr_14",
    "natr_14", "atr_slope_5", "rsi_14", "macd", "macd_hist", "bb_pctb", "bb_width", "kc_pos", "dc_pos_20",
    "adx_14", "plus_di_14", "minus_di_14", "stoch_k", "stoch_d", "cci_14", "willr_14", "roc_10", "mfi_14",
    "cmf_20", "obv", "vwap_dist_24", "volume_ratio_24", "skew_48", "kurt_48", "efficiency_ratio_24",
    "trend_strength", "taker_buy_ratio",
]
RETURN_LAGS = (1, 2, 3, 4, 6, 8, 12, 24, 48)
#: The longest rolling window (``dist_sma_200``): a series shorter than this never has every feature.
LONGEST_WINDOW = 200


def _returns(c: np.ndarray) -> dict[str, np.ndarray]:
    logc = np.log(c)
    out = {f"ret_{k}": logc - ind.shift(logc, k) for k in RETURN_LAGS}
    for n in (10, 20, 50, 100, 200):
        out[f"dist_sma_{n}"] = c / ind.sma(c, n) - 1.0
    for n in (12, 26, 50):
        out[f"dist_ema_{n}"] = c / ind.ema(c, n) - 1.0
    e20 = ind.ema(c, 20)
    out["ema20_slope_5"] = e20 / ind.shift(e20, 5) - 1.0
    return out


def _volatility(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    r1 = np.log(c) - np.log(ind.shift(c))
    hl2 = np.log(h / lo) ** 2
    co2 = np.log(c / o) ** 2
    rs = np.log(h / c) * np.log(h / o) + np.log(lo / c) * np.log(lo / o)
    out = {f"rv_{n}": ind.rolling_std(r1, n) for n in (12, 24, 48, 96)}
    for n in (24, 48):
        out[f"parkinson_{n}"] = np.sqrt(ind.sma(hl2, n) / (4.0 * np.log(2.0)))
        out[f"gk_{n}"] = np.sqrt(np.maximum(ind.sma(0.5 * hl2 - (2.0 * np.log(2.0) - 1.0) * co2, n), 0.0))
    out["rs_24"] = np.sqrt(np.maximum(ind.sma(rs, 24), 0.0))
    a14 = ind.atr(h, lo, c, 14)
    out["atr_14"] = a14
    out["natr_14"] = 100.0 * a14 / c
    out["atr_slope_5"] = a14 / ind.shift(a14, 5) - 1.0
    out["atr_ratio_7_28"] = ind.atr(h, lo, c, 7) / ind.atr(h, lo, c, 28)
    out["range_pct"] = (h - lo) / c
    return out


def _oscillators(h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray) -> dict[str, np.ndarray]:
    out = {f"rsi_{n}": ind.rsi(c, n) for n in (6, 14, 24)}
    m, s, hist = ind.macd(c)
    out.update({"macd": m, "macd_signal": s, "macd_hist": hist, "macd_norm": m / c, "macd_hist_norm": hist / c})
    out["stoch_k"], out["stoch_d"] = ind.stoch(h, lo, c)
    out["cci_14"], out["cci_20"] = ind.cci(h, lo, c, 14), ind.cci(h, lo, c, 20)
    out["willr_14"] = ind.willr(h, lo, c, 14)
    out.update({f"roc_{n}": ind.roc(c, n) for n in (1, 10, 20)})
    out["mfi_14"] = ind.mfi(h, lo, c, v, 14)
    return out


def _channels(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    up, mid, low = ind.bbands(c, 20, 2.0)
    out = {
        "bb_upper": up, "bb_middle": mid, "bb_lower": low,
        "bb_width": (up - low) / mid, "bb_pctb": ind._div(c - low, up - low),
    }
    kmid = ind.ema(c, 20)
    katr = ind.atr(h, lo, c, 10)
    kup, klow = kmid + 2.0 * katr, kmid - 2.0 * katr
    out.update({"kc_upper": kup, "kc_lower": klow, "kc_pos": ind._div(c - klow, kup - klow),
                "kc_width": (kup - klow) / kmid})
    for n in (20, 55):
        hh, ll = ind.rolling_max(h, n), ind.rolling_min(lo, n)
        out.update({f"dc_upper_{n}": hh, f"dc_lower_{n}": ll, f"dc_pos_{n}": ind._div(c - ll, hh - ll),
                    f"dc_width_{n}": (hh - ll) / c})
    return out


def _trend(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    a, pdi, mdi = ind.adx(h, lo, c, 14)
    out = {"adx_14": a, "plus_di_14": pdi, "minus_di_14": mdi, "di_diff_14": pdi - mdi}
    tenkan = (ind.rolling_max(h, 9) + ind.rolling_min(lo, 9)) / 2.0
    kijun = (ind.rolling_max(h, 26) + ind.rolling_min(lo, 26)) / 2.0
    # Senkou spans are plotted 26 bars ahead: the value shown at t was computed at t-26 (past data).
    span_a = ind.shift((tenkan + kijun) / 2.0, 26)
    span_b = ind.shift((ind.rolling_max(h, 52) + ind.rolling_min(lo, 52)) / 2.0, 26)
    top, bottom = np.fmax(span_a, span_b), np.fmin(span_a, span_b)
    out.update({
        "ichi_tenkan_dist": c / tenkan - 1.0, "ichi_kijun_dist": c / kijun - 1.0,
        "ichi_tk_cross": tenkan / kijun - 1.0, "ichi_cloud_top_dist": c / top - 1.0,
        "ichi_cloud_bottom_dist": c / bottom - 1.0, "ichi_cloud_thickness": (span_a - span_b) / c,
    })
    return out


def _volume_flow(h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray,
                 extra: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    logv = np.log1p(v)
    o = ind.obv(c, v)
    out = {
        "log_volume": logv, "volume_z_48": ind.rolling_zscore(logv, 48),
        "volume_ratio_24": ind._div(v, ind.sma(v, 24)), "obv": o,
        "obv_slope_12": ind._div(o - ind.shift(o, 12), ind.rolling_sum(v, 12)),
        "cmf_20": ind.cmf(h, lo, c, v, 20),
    }
    quote = extra.get("quote_volume", (h + lo + c) / 3.0 * v)
    for n in (24, 48):
        out[f"vwap_dist_{n}"] = c / ind._div(ind.rolling_sum(quote, n), ind.rolling_sum(v, n)) - 1.0
    # Taker and trade-count columns exist only in exchange data (Binance klines): not emitted without them,
    # rather than as columns that are NaN on every row.
    taker = extra.get("taker_buy_volume")
    if taker is not None:
        out["taker_buy_ratio"] = ind._div(taker, v)
    count = extra.get("count")
    if count is not None:
        size = ind._div(quote, count)
        out["avg_trade_size_ratio_48"] = ind._div(size, ind.sma(size, 48))
    return out


def _candles(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    body = c - o
    rng = h - lo
    upper = h - np.maximum(o, c)
    lower = np.minimum(o, c) - lo
    po, pc, ph, pl = ind.shift(o), ind.shift(c), ind.shift(h), ind.shift(lo)
    pbody = pc - po
    up3 = (body > 0) & (ind.shift(body) > 0) & (ind.shift(body, 2) > 0) & (c > pc) & (pc > ind.shift(c, 2))
    dn3 = (body < 0) & (ind.shift(body) < 0) & (ind.shift(body, 2) < 0) & (c < pc) & (pc < ind.shift(c, 2))
    f = np.float64
    return {
        "cdl_doji": (np.abs(body) <= 0.1 * rng).astype(f),
        "cdl_hammer": ((lower >= 2 * np.abs(body)) & (upper <= 0.25 * rng) & (rng > 0)).astype(f),
        "cdl_shooting_star": ((upper >= 2 * np.abs(body)) & (lower <= 0.25 * rng) & (rng > 0)).astype(f),
        "cdl_engulfing": (((pbody < 0) & (body > 0) & (o <= pc) & (c >= po)).astype(f)
                          - ((pbody > 0) & (body < 0) & (o >= pc) & (c <= po)).astype(f)),
        "cdl_inside_bar": ((h < ph) & (lo > pl)).astype(f),
        "cdl_outside_bar": ((h > ph) & (lo < pl)).astype(f),
        "cdl_marubozu": np.sign(body) * (np.abs(body) >= 0.9 * rng),
        "cdl_three_soldiers_crows": up3.astype(f) - dn3.astype(f),
        "wick_upper_ratio": ind._div(upper, rng),
        "wick_lower_ratio": ind._div(lower, rng),
        "body_ratio": ind._div(body, rng),
    }


def _tails(c: np.ndarray) -> dict[str, np.ndarray]:
    r1 = pd.Series(np.log(c)).diff()
    out = {}
    for n in (24, 48):
        roll = r1.rolling(n, min_periods=n)
        out[f"skew_{n}"] = roll.skew().to_numpy()
        out[f"kurt_{n}"] = roll.kurt().to_numpy()
    return out


def _pivots(ts: pd.Series, h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    """Classic floor pivots from the previous available UTC day's high, low and close."""
    day = pd.DatetimeIndex(ts.dt.floor("D")).asi8  # integer day keys: no per-row Timestamp objects
    daily = pd.DataFrame({"h": h, "l": lo, "c": c, "day": day}).groupby("day", sort=True).agg(
        h=("h", "max"), l=("l", "min"), c=("c", "last"))
    prev = daily.shift(1)
    pos = np.searchsorted(daily.index.to_numpy(), day)
    ph, pl, pc = (prev[k].to_numpy()[pos] for k in ("h", "l", "c"))
    p = (ph + pl + pc) / 3.0
    levels = {"p": p, "r1": 2 * p - pl, "s1": 2 * p - ph, "r2": p + (ph - pl), "s2": p - (ph - pl)}
    return {f"pivot_{k}_dist": c / v - 1.0 for k, v in levels.items()}


def _calendar(ts: pd.Series, intraday: bool = True) -> dict[str, np.ndarray]:
    """Cyclical calendar features; hour of day only for intraday bars (constant, or a DST artefact, on daily)."""
    wd = ts.dt.dayofweek.to_numpy()
    month = ts.dt.month.to_numpy() - 1
    two_pi = 2.0 * np.pi
    out = {}
    if intraday:
        hour = ts.dt.hour.to_numpy() + ts.dt.minute.to_numpy() / 60.0
        out = {"hour_sin": np.sin(two_pi * hour / 24), "hour_cos": np.cos(two_pi * hour / 24)}
    return {**out, "weekday_sin": np.sin(two_pi * wd / 7), "weekday_cos": np.cos(two_pi * wd / 7),
            "month_sin": np.sin(two_pi * month / 12), "month_cos": np.cos(two_pi * month / 12)}


def _regime(c: np.ndarray, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    move = np.abs(c - ind.shift(c, 24))
    path = ind.rolling_sum(np.abs(np.diff(c, prepend=np.nan)), 24)
    er = ind._div(move, path)
    strength = ind._div(np.abs(ind.ema(c, 20) - ind.ema(c, 50)), cols["atr_14"])
    vol_pct = pd.Series(cols["rv_24"]).rolling(240, min_periods=48).rank(pct=True).to_numpy()
    trending = (er > 0.3) & (cols["adx_14"] > 25)
    hint = np.where(vol_pct > 0.8, 3.0, np.where(trending, np.sign(cols["di_diff_14"]), 0.0))
    hint[np.isnan(vol_pct) | np.isnan(er)] = np.nan
    return {"efficiency_ratio_24": er, "trend_strength": strength, "vol_percentile_240": vol_pct,
            "regime_hint": hint}


def _normalized(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for key in (k for k in KEY_COLUMNS if k in cols):
        lagged = ind.shift(cols[key], 1)
        out[f"{key}_zn{NORM_WINDOW}"] = ind.rolling_zscore(lagged, NORM_WINDOW)
        out[f"{key}_mm{NORM_WINDOW}"] = ind.rolling_minmax(lagged, NORM_WINDOW)
    return out


def compute_features(bars: pd.DataFrame, intraday: bool = True) -> pd.DataFrame:
    """All technical features for one symbol's bars of one period.

    Parameters
    ----------
    bars : DataFrame
        Sorted bars with ``timestamp`` and ``open, high, low, close, volume`` (plus optional
        ``quote_volume``, ``count``, ``taker_buy_volume``).
    intraday : bool
        Whether bars are shorter than a day; daily bars get no hour-of-day features.

    Returns
    -------
    DataFrame
        One row per input row (same index), feature columns only; inputs are not modified.
    """
    missing = [c for c in ["timestamp", *PRICE_COLUMNS] if c not in bars.columns]
    if missing:
        raise DataError(f"compute_features: bars lack column(s) {missing}")
    o, h, lo, c, v = (bars[k].to_numpy(dtype=np.float64) for k in PRICE_COLUMNS)
    extra = {k: bars[k].to_numpy(dtype=np.float64) for k in ("quote_volume", "count", "taker_buy_volume")
             if k in bars.columns}
    ts = bars["timestamp"]
    with np.errstate(divide="ignore", invalid="ignore"):
        cols: dict[str, np.ndarray] = {}
        cols.update(_returns(c))
        cols.update(_volatility(o, h, lo, c))
        cols.update(_oscillators(h, lo, c, v))
        cols.update(_channels(h, lo, c))
        cols.update(_trend(h, lo, c))
        cols.update(_volume_flow(h, lo, c, v, extra))
        cols.update(_candles(o, h, lo, c))
        cols.update(_tails(c))
        cols.update(_pivots(ts, h, lo, c))
        cols.update(_calendar(ts, intraday))
        cols.update(_regime(c, cols))
        cols["close"] = c  # referenced by the normalized block only; not emitted twice
        norm = _normalized(cols)
        del cols["close"]
        cols.update(norm)
    # One 2-D block: avoids pandas consolidating ~190 separate arrays, and cleans inf in place.
    block = np.empty((len(bars), len(cols)), dtype=np.float64, order="F")  # contiguous columns
    for j, values in enumerate(cols.values()):
        block[:, j] = values
    block[np.isinf(block)] = np.nan
    return pd.DataFrame(block, index=bars.index, columns=list(cols))


def indicating_main(tf: str, bars_by_symbol: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Bars plus technical features for every symbol of period ``tf``, as one long frame.

    Parameters
    ----------
    tf : str
        Period label (``'1h'``, ``'4h'``, ``'1d'``), stored in the ``period`` column.
    bars_by_symbol : dict of str to DataFrame
        Clean bars of that period per symbol. An optional integer ``segment`` column splits a symbol's
        series (after a long gap): every segment's rolling features warm up from its own first bar, as
        after a listing, so no feature straddles the hole. The column is not carried into the output.

    Returns
    -------
    DataFrame
        ``symbol, period, timestamp``, the bar columns, then the features; sorted by symbol and time.
    """
    intraday = pd.Timedelta(tf.replace("d", "D")) < pd.Timedelta(days=1)
    parts = []
    for symbol in sorted(bars_by_symbol):
        bars = bars_by_symbol[symbol].reset_index(drop=True)
        if bars.empty:
            continue
        segment = bars.pop("segment") if "segment" in bars.columns else pd.Series(0, index=bars.index)
        feats = pd.concat([compute_features(seg, intraday) for _, seg in bars.groupby(segment.to_numpy(), sort=True)])
        head = pd.DataFrame({"symbol": symbol, "period": tf}, index=bars.index)
        parts.append(pd.concat([head, bars, feats.loc[bars.index]], axis=1))
    if not parts:
        raise DataError(f"no bars to compute {tf} indicators from")
    return pd.concat(parts, ignore_index=True)


def indicator_columns(frame: pd.DataFrame) -> list[str]:
    """Columns of ``frame`` produced by :func:`compute_features` (not ids, bars or targets)."""
    return feature_columns(frame, exclude=[*PRICE_COLUMNS, *EXTRA_BAR_COLUMNS])
