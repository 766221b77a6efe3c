"""Null markets: price panels with no predictable direction, shaped like real ones (tests and benchmarks).

A statistic that claims skill must be silent here. Each symbol's log price is a random walk whose shocks
have

* **volatility clustering**: an EGARCH-type log variance driven by past absolute shocks (vectorized with
  ``lfilter``; the variance never depends on the current shock, so returns stay a martingale difference);
* **fat tails**: Student-t shocks with ``df`` degrees of freedom, scaled to unit variance;
* **a common factor** across symbols (correlation ``rho`` between symbols' shocks);
* a **calendar**: ``24/7`` (every bar) or ``session`` (weekdays only, like stocks and FX).

:func:`null_bars` gives plain OHLCV bars; :func:`null_panel` runs them through the project's real
indicator, calendar and target code, so every feature column that a real OHLCV file produces is present.
Direction and return targets are unpredictable by construction; volatility targets are predictable (that
is what clustering means), so null tests use the direction / return targets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import signal

from src.generate_targets_auto import make_targets
from src.indicating import indicating_main
from src.market_calendar import assign_time_idx
from utils.timeline import period_delta

VOL_PERSISTENCE = 0.985  # log-variance AR coefficient per bar (half-life ~46 bars)
VOL_OF_VOL = 0.12


def _t_shocks(rng: np.random.Generator, shape: tuple[int, ...], df: float) -> np.ndarray:
    z = rng.standard_t(df, size=shape)
    return z / np.sqrt(df / (df - 2.0))  # unit variance


def null_bars(n_bars: int, n_symbols: int = 1, seed: int = 0, freq: str = "1h", calendar: str = "24/7",
              start: str = "2021-01-04", vol: float = 0.01, df: float = 4.0,
              rho: float = 0.4) -> dict[str, pd.DataFrame]:
    """OHLCV bars per symbol (``{'N00': frame, ...}``) from the null process of the module docstring.

    Parameters
    ----------
    n_bars : int
        Bars per symbol (after the calendar drops closed days).
    calendar : {'24/7', 'session'}
        ``session`` keeps weekdays only.
    vol : float
        Typical per-bar return volatility.
    df : float
        Student-t degrees of freedom (> 2).
    rho : float
        Correlation of the symbols' shocks (a common factor).
    """
    rng = np.random.default_rng(seed)
    ts = pd.date_range(pd.Timestamp(start, tz="UTC"), periods=int(n_bars * (1.5 if calendar == "session" else 1)) + 8,
                       freq=freq)
    if calendar == "session":
        ts = ts[ts.dayofweek < 5]
    ts = ts[:n_bars]
    n = len(ts)
    common = _t_shocks(rng, (n, 1), df)
    z = np.sqrt(rho) * common + np.sqrt(1 - rho) * _t_shocks(rng, (n, n_symbols), df)
    # log variance: AR(1) driven by the *previous* bar's |z| (centred), so sigma_t is known before z_t
    abs_dev = np.abs(z) - np.abs(z).mean(axis=0)
    logvar = signal.lfilter([0.0, VOL_OF_VOL], [1.0, -VOL_PERSISTENCE], abs_dev, axis=0)
    sigma = vol * np.exp(logvar - logvar.mean(axis=0))
    r = sigma * z
    close = 100.0 * np.exp(np.cumsum(r, axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * np.exp(0.1 * sigma * _t_shocks(rng, (n, n_symbols), df))
    wick = np.abs(_t_shocks(rng, (2, n, n_symbols), df)) * sigma * 0.5
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = np.exp(8.0 + 0.5 * rng.standard_normal((n, n_symbols)) + 20.0 * (sigma - vol))
    out = {}
    for i in range(n_symbols):  # one frame per symbol (a loop over symbols, not rows)
        out[f"N{i:02d}"] = pd.DataFrame({
            "timestamp": ts, "open": open_[:, i], "high": high[:, i], "low": low[:, i], "close": close[:, i],
            "volume": volume[:, i], "quote_volume": volume[:, i] * close[:, i],
            "count": np.maximum(1, (volume[:, i] / 10).astype(np.int64)),
            "taker_buy_volume": volume[:, i] * rng.uniform(0.4, 0.6, n),
        })
    return out


def null_panel(n_bars: int, n_symbols: int = 1, seed: int = 0, period: str = "1h", calendar: str = "24/7",
               horizons: Sequence[int] = (1, 4), **kwargs) -> pd.DataFrame:
    """Long panel ``symbol, period, timestamp, time_idx, gap_before`` + every indicator + targets of a null market.

    ``period`` is the bar length (``1h``, ``4h`` or ``1d``); other keyword arguments go to :func:`null_bars`.
    """
    freq = {"1h": "h", "4h": "4h", "1d": "D"}[period]
    bars = null_bars(n_bars, n_symbols, seed, freq, calendar, **kwargs)
    indicated = indicating_main(period, bars)
    panel = assign_time_idx(indicated, period_delta(period), calendar)
    return pd.concat([panel, make_targets(panel, horizons)], axis=1)
