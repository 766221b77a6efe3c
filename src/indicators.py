"""Vectorized technical indicators (pure functions on numpy arrays).

Where TA-Lib defines an indicator, the definition and the seeding follow TA-Lib (default
parameters, SMA-seeded Wilder/EMA smoothing, population standard deviation), and the test
suite checks agreement to a relative 1e-6. Every function looks only at the current and
earlier elements of its inputs, so a value at ``t`` never depends on data after ``t``.
Recursive smoothing runs in pandas' compiled ``ewm``; there are no Python loops over rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter


def _s(x: np.ndarray) -> pd.Series:
    return pd.Series(x, copy=False)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b with NaN (not inf) where b is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(a, dtype=np.float64) / np.asarray(b, dtype=np.float64)
    out[~np.isfinite(out)] = np.nan
    return out


def shift(x: np.ndarray, k: int = 1) -> np.ndarray:
    """``x`` delayed by ``k`` elements (NaN-padded)."""
    out = np.full(x.shape, np.nan)
    if k < x.size:
        out[k:] = x[: x.size - k]
    return out


def sma(x: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average over ``n`` elements (NaN until ``n`` are available)."""
    return _s(x).rolling(n, min_periods=n).mean().to_numpy()


def rolling_max(x: np.ndarray, n: int) -> np.ndarray:
    """Highest value over the last ``n`` elements."""
    return _s(x).rolling(n, min_periods=n).max().to_numpy()


def rolling_min(x: np.ndarray, n: int) -> np.ndarray:
    """Lowest value over the last ``n`` elements."""
    return _s(x).rolling(n, min_periods=n).min().to_numpy()


def rolling_sum(x: np.ndarray, n: int) -> np.ndarray:
    """Sum over the last ``n`` elements."""
    return _s(x).rolling(n, min_periods=n).sum().to_numpy()


def rolling_std(x: np.ndarray, n: int, ddof: int = 1) -> np.ndarray:
    """Standard deviation over the last ``n`` elements."""
    return _s(x).rolling(n, min_periods=n).std(ddof=ddof).to_numpy()


def seeded_ewm(x: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """Exponential smoothing seeded, like TA-Lib, with the mean of the first ``n`` valid values.

    The first output is at the ``n``-th valid element; after it
    ``y_t = y_{t-1} + alpha * (x_t - y_{t-1})``.
    """
    out = np.full(x.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(x))
    if valid.size < n:
        return out
    start = valid[0] + n - 1
    seed = x[valid[0] : start + 1].mean()
    tail = x[start + 1 :]
    out[start] = seed
    if np.isnan(tail).any():
        # pandas carries the last value over interior NaNs instead of poisoning the rest.
        full = np.concatenate([[seed], tail])
        out[start:] = _s(full).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    elif tail.size:
        # y_t = (1 - alpha) y_{t-1} + alpha x_t as a first-order IIR filter (compiled loop).
        out[start + 1 :] = lfilter([alpha], [1.0, alpha - 1.0], tail, zi=[(1.0 - alpha) * seed])[0]
    return out


def ema(x: np.ndarray, n: int) -> np.ndarray:
    """TA-Lib EMA: smoothing 2/(n+1), seeded with the SMA of the first ``n`` values."""
    return seeded_ewm(x, n, 2.0 / (n + 1))


def wilder(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder's smoothing (alpha 1/n), seeded with the SMA of the first ``n`` values."""
    return seeded_ewm(x, n, 1.0 / n)


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """TA-Lib TRANGE (undefined on the first bar)."""
    prev = shift(close)
    tr = np.maximum.reduce([high - low, np.abs(high - prev), np.abs(low - prev)])
    tr[0] = np.nan
    return tr


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """TA-Lib ATR."""
    return wilder(true_range(high, low, close), n)


def rsi(close: np.ndarray, n: int = 14) -> np.ndarray:
    """TA-Lib RSI."""
    d = np.diff(close, prepend=np.nan)
    up = wilder(np.where(np.isnan(d), np.nan, np.maximum(d, 0.0)), n)
    down = wilder(np.where(np.isnan(d), np.nan, np.maximum(-d, 0.0)), n)
    total = up + down
    return np.where(total > 0, 100.0 * _div(up, total), 0.0 * total)


def macd(close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[np.ndarray, ...]:
    """TA-Lib MACD: (macd, signal, histogram)."""
    line = ema(close, fast) - ema(close, slow)
    sig = ema(line, signal)
    return line, sig, line - sig


def bbands(close: np.ndarray, n: int = 20, k: float = 2.0) -> tuple[np.ndarray, ...]:
    """TA-Lib BBANDS (SMA middle, population stdev): (upper, middle, lower)."""
    mid = sma(close, n)
    dev = rolling_std(close, n, ddof=0)
    return mid + k * dev, mid, mid - k * dev


def _dm(high: np.ndarray, low: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    up = np.diff(high, prepend=np.nan)
    down = -np.diff(low, prepend=np.nan)
    plus = np.where((up > down) & (up > 0), up, 0.0)
    minus = np.where((down > up) & (down > 0), down, 0.0)
    plus[0] = minus[0] = np.nan
    return plus, minus


def adx(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> tuple[np.ndarray, ...]:
    """TA-Lib ADX, PLUS_DI, MINUS_DI: (adx, plus_di, minus_di)."""
    plus, minus = _dm(high, low)
    tr = true_range(high, low, close)
    # Ratios of Wilder sums equal ratios of Wilder averages, so averages are used throughout.
    s_tr = wilder(tr, n)
    pdi = 100.0 * _div(wilder(plus, n), s_tr)
    mdi = 100.0 * _div(wilder(minus, n), s_tr)
    dx = 100.0 * _div(np.abs(pdi - mdi), pdi + mdi)
    return wilder(dx, n), pdi, mdi


def stoch(high: np.ndarray, low: np.ndarray, close: np.ndarray, fastk: int = 5, slowk: int = 3,
          slowd: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """TA-Lib STOCH with SMA smoothing: (slowk, slowd)."""
    hh, ll = rolling_max(high, fastk), rolling_min(low, fastk)
    k = 100.0 * _div(close - ll, hh - ll)
    sk = sma(k, slowk)
    sd = sma(sk, slowd)
    # TA-Lib gives both outputs one lookback, so slow %K starts where slow %D does.
    return np.where(np.isnan(sd), np.nan, sk), sd


def cci(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """TA-Lib CCI (mean absolute deviation around the window's own mean)."""
    tp = (high + low + close) / 3.0
    out = np.full(tp.shape, np.nan)
    if tp.size < n:
        return out
    win = sliding_window_view(tp, n)
    mean = win.mean(axis=1)
    mad = np.abs(win - mean[:, None]).mean(axis=1)
    out[n - 1 :] = np.where(mad > 0, _div(tp[n - 1 :] - mean, 0.015 * mad), 0.0)
    return out


def willr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """TA-Lib WILLR."""
    hh, ll = rolling_max(high, n), rolling_min(low, n)
    return -100.0 * _div(hh - close, hh - ll)


def mfi(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int = 14) -> np.ndarray:
    """TA-Lib MFI."""
    tp = (high + low + close) / 3.0
    flow = tp * volume
    d = np.diff(tp, prepend=np.nan)
    pos = rolling_sum(np.where(np.isnan(d), np.nan, np.where(d > 0, flow, 0.0)), n)
    neg = rolling_sum(np.where(np.isnan(d), np.nan, np.where(d < 0, flow, 0.0)), n)
    total = pos + neg
    return np.where(total > 0, 100.0 * _div(pos, total), 0.0 * total)


def obv(close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """TA-Lib OBV (starts at the first bar's volume)."""
    step = np.sign(np.diff(close, prepend=np.nan)) * volume
    step[0] = volume[0]
    return np.cumsum(np.nan_to_num(step, nan=0.0))


def roc(close: np.ndarray, n: int = 10) -> np.ndarray:
    """TA-Lib ROC: percentage change over ``n`` bars."""
    return 100.0 * (_div(close, shift(close, n)) - 1.0)


def cmf(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int = 20) -> np.ndarray:
    """Chaikin money flow over ``n`` bars."""
    mult = _div((close - low) - (high - close), high - low)
    return _div(rolling_sum(np.nan_to_num(mult) * volume, n), rolling_sum(volume, n))


def rolling_zscore(x: np.ndarray, n: int) -> np.ndarray:
    """(x - mean) / std over the trailing ``n`` elements (sample std)."""
    s = _s(x).rolling(n, min_periods=n)
    return _div(x - s.mean().to_numpy(), s.std().to_numpy())


def rolling_minmax(x: np.ndarray, n: int) -> np.ndarray:
    """Position of ``x`` within its trailing ``n``-element range, in [0, 1]."""
    lo, hi = rolling_min(x, n), rolling_max(x, n)
    return _div(x - lo, hi - lo)
