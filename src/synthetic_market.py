"""Embedded synthetic market in Binance public-data formats, with known predictive structure.

The generator is the project's default data set: when no raw data is present, every stage
runs on it, and because the planted drivers are known, every later stage can be scored
against the best achievable forecast (``oracle.parquet``).

Model (hourly bars, symbol ``i``, bar ``j``; all parameters in ``ground_truth.json``)::

    r_ij   = mu_ij + sigma_ij * eps_ij                       log return of bar j
    eps_ij = sqrt((nu-2)/chi2_j) * (beta_i Z_mj + sqrt(1-beta_i^2) Z_ij)
                                                           standardized Student-t (nu), common factor
    sigma_ij = base_i * regime_vol[R_j] * exp(g_ij)
    g_ij   = phi_g g_i,j-1 + a (|eps_i,j-1| - E|eps|) + lev eps_i,j-1 + s xi    (EGARCH-like clustering)
    mu_ij  = sigma_ij * strength * ( drift[R_j]                               regime drift
              - k_fund * ext(fz_i,j-1)                                        lagged funding extreme
              + k_oi * tanh(dOI24_i,j-1 / 0.05) * tanh(M24_i,j-1)             OI change x momentum
              - k_flow * x_{day(j)-1}                                         yesterday's exchange net flow
              - k_rev * 1[R_j = range] * eps_i,j-1 )                          short-term reversal in range

``R`` is a market-wide 4-state Markov regime (trend-up, trend-down, range, high-vol). Every
driver is built from exogenous shocks only (never from ``mu`` itself), so the whole path is
computed with vectorized recursions instead of a loop over bars.

Usage::

    python -m src.synthetic_market --out data/raw --symbols 6 --days 730 --seed 7
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import signal, stats

from src.binance_dump import write_monthly
from src.synthetic_paths import (
    abs_t_mean,
    ar1,
    epoch_ms,
    extreme,
    funding_last_published,
    lagged,
    rolling_sum,
    shocks,
)
from utils.errors import ConfigError, ProjectError
from utils.io import write_csv, write_json, write_parquet

logger = logging.getLogger(__name__)

HOUR_MS = 3_600_000
KLINE_COLUMNS = [
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
    "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
]
FUNDING_COLUMNS = ["calc_time", "funding_interval_hours", "last_funding_rate"]
METRICS_COLUMNS = [
    "create_time", "symbol", "sum_open_interest", "sum_open_interest_value",
    "count_toptrader_long_short_ratio", "sum_toptrader_long_short_ratio",
    "count_long_short_ratio", "sum_taker_long_short_vol_ratio",
]
# name, start price, base hourly volatility, loading on the market factor
_SYMBOL_TABLE = [
    ("BTCUSDT", 20000.0, 0.0045, 0.90), ("ETHUSDT", 1500.0, 0.0058, 0.85),
    ("SOLUSDT", 20.0, 0.0085, 0.70), ("BNBUSDT", 300.0, 0.0055, 0.70),
    ("XRPUSDT", 0.40, 0.0070, 0.60), ("DOGEUSDT", 0.08, 0.0085, 0.60),
    ("ADAUSDT", 0.30, 0.0075, 0.60), ("AVAXUSDT", 15.0, 0.0085, 0.65),
    ("LINKUSDT", 6.0, 0.0080, 0.65), ("LTCUSDT", 70.0, 0.0065, 0.65),
]
REGIMES = ("trend_up", "trend_down", "range", "high_vol")
_REGIME_DRIFT = np.array([0.05, -0.05, 0.0, 0.0])  # in units of sigma per bar
_REGIME_VOL = np.array([1.0, 1.15, 0.7, 2.2])
_REGIME_STAY = 0.997  # hourly probability of staying: mean regime length ~14 days
# Planted driver loadings (multiplied by ``strength``), in units of sigma per bar.
K_FUND, K_OI, K_FLOW, K_REV = 0.15, 0.10, 0.08, 0.06
# Persistence used by the multi-bar oracle approximation (per hourly bar).
_PERSIST = {
    "regime": (4 * _REGIME_STAY - 1) / 3,
    "funding": 0.99,
    "oi_momentum": 1 - 1 / 24,
    "flow": 0.6 ** (1 / 24),
    "reversal": 0.0,
}
_FUNDING_MEAN, _FUNDING_SCALE = 1e-4, 4e-4
_VOL_PHI, _VOL_A, _VOL_LEV, _VOL_NOISE = 0.97, 0.12, -0.05, 0.05


@dataclass(frozen=True)
class MarketSpec:
    """Parameters of the synthetic market (every field is recorded in ``ground_truth.json``)."""

    n_symbols: int = 6
    days: int = 730
    seed: int = 7
    start: str = "2023-01-01"
    strength: float = 1.0
    nu: float = 4.0
    onchain_delay_days: int = 180
    late_listing_fraction: float = 0.25
    missing_bar_rate: float = 5e-4
    horizons: tuple[int, ...] = field(default=(1, 4, 24))

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values the generator cannot honour."""
        checks = [
            (1 <= self.n_symbols <= 1000, "n_symbols", self.n_symbols, "must be in [1, 1000]"),
            (self.days >= 30, "days", self.days, "must be >= 30"),
            (self.strength >= 0, "strength", self.strength, "must be >= 0"),
            (self.nu > 2.5, "nu", self.nu, "must be > 2.5 (finite variance)"),
            (0 <= self.late_listing_fraction < 0.9, "late_listing_fraction", self.late_listing_fraction,
             "must be in [0, 0.9)"),
            (0 <= self.missing_bar_rate < 0.05, "missing_bar_rate", self.missing_bar_rate, "must be in [0, 0.05)"),
            (all(h >= 1 for h in self.horizons), "horizons", self.horizons, "must all be >= 1"),
        ]
        for ok, key, value, why in checks:
            if not ok:
                raise ConfigError(f"synthetic market: '{key}' = {value!r} {why}")


@dataclass
class SyntheticMarket:
    """Everything the generator produces, as in-memory frames (see :func:`write_market`)."""

    klines: dict[str, pd.DataFrame]
    premium: dict[str, pd.DataFrame]
    funding: dict[str, pd.DataFrame]
    metrics: dict[str, pd.DataFrame]
    onchain: pd.DataFrame
    altcoin: pd.DataFrame
    dominance: pd.DataFrame
    oracle: pd.DataFrame
    ground_truth: dict


def symbol_names(n: int) -> list[str]:
    """Names of the first ``n`` synthetic symbols (``SYM11USDT`` ... beyond the table)."""
    named = [row[0] for row in _SYMBOL_TABLE]
    return (named + [f"SYM{i + 1}USDT" for i in range(len(named), n)])[:n]


def _symbol_params(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = list(_SYMBOL_TABLE) + [("", 10.0, 0.0080, 0.6)] * max(0, n - len(_SYMBOL_TABLE))
    rows = rows[:n]
    return (np.array([r[1] for r in rows]), np.array([r[2] for r in rows]), np.array([r[3] for r in rows]))


def _regime_path(rng: np.random.Generator, n: int) -> np.ndarray:
    switches = rng.random(n) > _REGIME_STAY
    steps = np.where(switches, rng.integers(1, len(REGIMES), n), 0)
    return (rng.integers(len(REGIMES)) + np.cumsum(steps)) % len(REGIMES)


@dataclass
class _Latent:
    """Latent paths shared by the writers and the oracle (arrays of shape (bars, symbols))."""

    times: pd.DatetimeIndex
    regime: np.ndarray
    eps: np.ndarray
    sigma: np.ndarray
    comps: dict[str, np.ndarray]
    mu: np.ndarray
    log_close: np.ndarray
    premium: np.ndarray
    funding_published: np.ndarray
    log_oi: np.ndarray
    flow_daily: np.ndarray
    g: np.ndarray


def _simulate_latent(spec: MarketSpec, rng: np.random.Generator) -> _Latent:
    n, k = spec.days * 24, spec.n_symbols
    times = pd.date_range(pd.Timestamp(spec.start, tz="UTC"), periods=n, freq="h")
    start_px, base_vol, beta = _symbol_params(k)
    regime = _regime_path(rng, n)
    eps = shocks(rng, n, beta, spec.nu)

    vol_in = _VOL_A * (np.abs(eps) - abs_t_mean(spec.nu)) + _VOL_LEV * eps + _VOL_NOISE * rng.standard_normal((n, k))
    g = signal.lfilter([0.0, 1.0], [1.0, -_VOL_PHI], vol_in, axis=0)
    sigma = base_vol * _REGIME_VOL[regime][:, None] * np.exp(g)

    # Premium index / funding: AR(1) partly driven by the return shocks (crowded longs after rallies).
    prem_latent = ar1(rng, (n, k), 0.99, 0.5 * eps + math.sqrt(0.75) * rng.standard_normal((n, k)))
    premium = _FUNDING_MEAN + _FUNDING_SCALE * prem_latent
    funding_published, funding_last = funding_last_published(premium, times.hour.to_numpy(), _FUNDING_MEAN)
    fz = (funding_last - _FUNDING_MEAN) / _FUNDING_SCALE

    oi_drift = 0.002 * ar1(rng, (n, k), 0.995)
    log_oi = np.log(start_px * 0 + 1e5) + np.cumsum(oi_drift + 0.003 * rng.standard_normal((n, k)), axis=0)
    d_oi24 = log_oi - np.vstack([np.repeat(log_oi[:1], 24, axis=0), log_oi[:-24]])
    mom24 = rolling_sum(eps, 24) / math.sqrt(24)

    n_days = spec.days
    flow_daily = ar1(rng, (n_days,), 0.6)
    day_of_bar = np.arange(n) // 24
    flow_prev = np.where(day_of_bar > 0, flow_daily[np.maximum(day_of_bar - 1, 0)], 0.0)[:, None]

    s = spec.strength
    comps = {  # each already aligned to bar j (uses information up to the close of bar j-1)
        "regime": np.broadcast_to(_REGIME_DRIFT[regime][:, None], (n, k)) * s,
        "funding": -K_FUND * extreme(lagged(fz)) * s,
        "oi_momentum": K_OI * np.tanh(lagged(d_oi24) / 0.05) * np.tanh(lagged(mom24)) * s,
        "flow": -K_FLOW * np.broadcast_to(flow_prev, (n, k)) * s,
        "reversal": -K_REV * (regime == 2)[:, None] * lagged(eps) * s,
    }
    mu = sigma * sum(comps.values())
    log_close = np.log(start_px) + np.cumsum(mu + sigma * eps, axis=0)
    return _Latent(times, regime, eps, sigma, comps, mu, log_close, premium, funding_published,
                   log_oi, flow_daily, g)


def _listing_mask(spec: MarketSpec, rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[int]]:
    """Bars that exist in the kline files: late listing for the last symbol, a few missing bars."""
    k = spec.n_symbols
    listed_from = [0] * k
    if k > 1 and spec.late_listing_fraction > 0:
        listed_from[-1] = int(spec.days * spec.late_listing_fraction) * 24
    mask = np.arange(n)[:, None] >= np.array(listed_from)[None, :]
    missing = rng.random((n, k)) < spec.missing_bar_rate
    missing[[0, -1], :] = False
    for i, first in enumerate(listed_from):
        missing[first, i] = False
    return mask & ~missing, listed_from


def _kline_frame(lat: _Latent, i: int, rows: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    close = np.exp(lat.log_close[:, i])
    open_ = np.exp(lagged(lat.log_close[:, i], lat.log_close[0, i] - lat.mu[0, i]))
    sig = lat.sigma[:, i]
    n = close.size
    high = np.maximum(open_, close) * np.exp(np.abs(rng.standard_normal(n)) * 0.5 * sig)
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.standard_normal(n)) * 0.5 * sig)
    e = lat.eps[:, i]
    log_vol = 8.0 + lat.g[:, i] + np.log(_REGIME_VOL[lat.regime]) + 0.8 * np.abs(e) + 0.3 * rng.standard_normal(n)
    volume = np.exp(log_vol) * 1e4 / close.mean()
    vwap = (open_ + high + low + close) / 4
    taker_share = np.clip(0.5 + 0.15 * np.tanh(e), 0.05, 0.95)
    open_ms = epoch_ms(lat.times)
    frame = pd.DataFrame({
        "open_time": open_ms, "open": open_, "high": high, "low": low, "close": close,
        "volume": volume, "close_time": open_ms + HOUR_MS - 1, "quote_volume": volume * vwap,
        "count": np.maximum(1, np.round(volume * vwap / 2500.0)).astype(np.int64),
        "taker_buy_volume": volume * taker_share, "taker_buy_quote_volume": volume * taker_share * vwap,
        "ignore": 0,
    })
    return frame.loc[rows].reset_index(drop=True)


def _premium_frame(lat: _Latent, i: int, rows: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    p = lat.premium[:, i]
    prev = lagged(p, p[0])
    wick = np.abs(rng.standard_normal((2, p.size))) * 2e-5
    open_ms = epoch_ms(lat.times)
    frame = pd.DataFrame({
        "open_time": open_ms, "open": prev, "high": np.maximum(prev, p) + wick[0],
        "low": np.minimum(prev, p) - wick[1], "close": p, "volume": 0.0,
        "close_time": open_ms + HOUR_MS - 1, "quote_volume": 0.0, "count": 60,
        "taker_buy_volume": 0.0, "taker_buy_quote_volume": 0.0, "ignore": 0,
    })
    return frame.loc[rows].reset_index(drop=True)


def _funding_frame(lat: _Latent, i: int, listed: np.ndarray) -> pd.DataFrame:
    rate = lat.funding_published[:, i]
    keep = ~np.isnan(rate) & listed
    close_ms = epoch_ms(lat.times) + HOUR_MS
    return pd.DataFrame({
        "calc_time": close_ms[keep], "funding_interval_hours": 8, "last_funding_rate": np.round(rate[keep], 8),
    })


def _metrics_frame(lat: _Latent, i: int, name: str, listed: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    close_ts = lat.times + pd.Timedelta(hours=1)
    oi = np.exp(lat.log_oi[:, i])
    close = np.exp(lat.log_close[:, i])
    prem_z = (lat.premium[:, i] - _FUNDING_MEAN) / _FUNDING_SCALE
    noise = 0.05 * rng.standard_normal((4, oi.size))
    e = lat.eps[:, i]
    frame = pd.DataFrame({
        "create_time": close_ts.strftime("%Y-%m-%d %H:%M:%S"),
        "symbol": name,
        "sum_open_interest": oi,
        "sum_open_interest_value": oi * close,
        "count_toptrader_long_short_ratio": np.exp(0.15 * np.tanh(prem_z) + noise[0]),
        "sum_toptrader_long_short_ratio": np.exp(0.10 * np.tanh(prem_z) + noise[1]),
        "count_long_short_ratio": np.exp(0.20 * np.tanh(prem_z) + noise[2]),
        "sum_taker_long_short_vol_ratio": np.exp(0.3 * np.tanh(e) + noise[3]),
    })
    return frame.loc[listed].reset_index(drop=True)


def _global_frames(spec: MarketSpec, lat: _Latent, names: list[str], listed: np.ndarray,
                   rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    days = pd.date_range(pd.Timestamp(spec.start), periods=spec.days, freq="D")
    n = spec.days
    trend = np.linspace(0, 0.4, n)
    onchain = pd.DataFrame({
        "date": days.strftime("%Y-%m-%d"),
        "active_addresses": np.round(9e5 * np.exp(trend + 0.05 * ar1(rng, (n,), 0.9))).astype(np.int64),
        "transaction_count": np.round(3e5 * np.exp(0.5 * trend + 0.06 * ar1(rng, (n,), 0.8))).astype(np.int64),
        "exchange_net_flow": 1500.0 * (lat.flow_daily + 0.2 * rng.standard_normal(n)),
        "stablecoin_supply": 1.2e11 * np.exp(np.cumsum(0.0005 + 0.003 * rng.standard_normal(n))),
    }).iloc[spec.onchain_delay_days:].reset_index(drop=True)
    daily_close = pd.DataFrame(np.where(listed, lat.log_close, np.nan), index=lat.times, columns=names)
    daily_close = daily_close.resample("1D").last()
    daily_ret = daily_close.diff()
    alts = daily_ret.drop(columns=names[:1]) if len(names) > 1 else daily_ret
    alt_ret = alts.mean(axis=1).fillna(0.0).to_numpy()
    altcoin = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "altcoin_index": 1000 * np.exp(np.cumsum(alt_ret))})
    rel = pd.Series(alt_ret - daily_ret.iloc[:, 0].fillna(0.0).to_numpy()).rolling(7, min_periods=1).sum()
    logit = np.log(0.45 / 0.55) + 0.3 * ar1(rng, (n,), 0.98) - 1.5 * rel.to_numpy()
    dominance = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "btc_dominance": 1 / (1 + np.exp(-logit))})
    return onchain, altcoin, dominance


def _oracle(spec: MarketSpec, lat: _Latent, names: list[str], exists: np.ndarray) -> pd.DataFrame:
    """True P(up) and E[log return] over each horizon, for every existing (symbol, bar).

    Horizon 1 is exact under the generator. Longer horizons sum each driver's expected
    contribution with its persistence (``_PERSIST``) and use a normal approximation with
    variance ``h * sigma^2``; both facts are recorded in ``ground_truth.json``.

    ``sigma_h1`` and ``drift_h1_<driver>`` (each driver's share of the next bar's expected log
    return) let a stage compute the oracle restricted to the drivers its data can observe.
    """
    n, _ = lat.mu.shape
    nxt = slice(1, None)
    sig1 = np.full_like(lat.sigma, np.nan)
    sig1[:-1] = lat.sigma[nxt]
    comp1 = {c: np.vstack([v[nxt], np.full((1, v.shape[1]), np.nan)]) for c, v in lat.comps.items()}
    out = {"symbol": np.repeat(np.array(names)[None, :], n, axis=0), "timestamp": None}
    scale = math.sqrt(spec.nu / (spec.nu - 2))
    for h in spec.horizons:
        mean = sig1 * sum(
            comp1[c] * (h if _PERSIST[c] == 1 else (1 - _PERSIST[c] ** h) / (1 - _PERSIST[c]))
            for c in comp1
        )
        if h == 1:
            prob = stats.t.cdf(mean / sig1 * scale, df=spec.nu)
        else:
            prob = stats.norm.cdf(mean / (sig1 * math.sqrt(h)))
        valid = np.arange(n)[:, None] + h < n
        out[f"exp_logreturn_h{h}"] = np.where(valid, mean, np.nan)
        out[f"prob_up_h{h}"] = np.where(valid, prob, np.nan)
    out["sigma_h1"] = sig1
    out.update({f"drift_h1_{c}": sig1 * v for c, v in comp1.items()})
    out["timestamp"] = np.repeat(lat.times.to_numpy()[:, None], len(names), axis=1)
    frame = pd.DataFrame({key: val[exists] for key, val in out.items()})
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)


def _ground_truth(spec: MarketSpec, names: list[str], listed_from: list[int], exists: np.ndarray,
                  lat: _Latent) -> dict:
    s = spec.strength
    return {
        "spec": asdict(spec),
        "symbols": names,
        "listing_time": {nm: str(lat.times[lf]) for nm, lf in zip(names, listed_from, strict=True)},
        "missing_bars": {nm: int((~exists[listed_from[i]:, i]).sum()) for i, nm in enumerate(names)},
        "onchain_start": str((pd.Timestamp(spec.start) + pd.Timedelta(days=spec.onchain_delay_days)).date()),
        "return_model": "r_j = mu_j + sigma_j * eps_j; eps standardized Student-t(nu) with a common factor",
        "regimes": {"names": list(REGIMES), "drift_sigma": _REGIME_DRIFT.tolist(),
                    "vol_multiplier": _REGIME_VOL.tolist(), "stay_probability_per_hour": _REGIME_STAY},
        "volatility": {"model": "EGARCH-like log-vol", "phi": _VOL_PHI, "abs_shock": _VOL_A,
                       "leverage": _VOL_LEV, "noise": _VOL_NOISE},
        "drivers": [
            {"name": "funding_extreme", "source": "fundingRate.last_funding_rate", "lag_bars": 1,
             "transform": "fz=(rate-1e-4)/4e-4; sign(fz)*max(|fz|-1,0) of the last published rate",
             "coef_sigma": -K_FUND * s, "persistence": _PERSIST["funding"]},
            {"name": "oi_change_x_momentum", "source": "metrics.sum_open_interest x klines.close",
             "lag_bars": 1, "transform": "tanh(dlog(OI) over 24 bars/0.05) * tanh(24-bar shock momentum)",
             "coef_sigma": K_OI * s, "persistence": _PERSIST["oi_momentum"]},
            {"name": "exchange_net_flow", "source": "onchain.exchange_net_flow", "lag_days": 1,
             "transform": "previous UTC day's standardized net flow (published at day end)",
             "coef_sigma": -K_FLOW * s, "persistence": _PERSIST["flow"]},
            {"name": "regime_drift", "source": "latent regime", "lag_bars": 0,
             "coef_sigma": (_REGIME_DRIFT * s).tolist(), "persistence": _PERSIST["regime"]},
            {"name": "range_reversal", "source": "klines.close (previous bar shock)", "lag_bars": 1,
             "coef_sigma": -K_REV * s, "active_in": "range"},
        ],
        "oracle": {"file": "oracle.parquet", "horizons_hours": list(spec.horizons),
                   "components": "sigma_h1 and drift_h1_<driver> for " + ", ".join(_PERSIST),
                   "method": "h=1 exact Student-t probability; h>1 persistence-weighted drift sum with a "
                             "normal approximation, variance h*sigma^2",
                   "timestamp": "bar open time; the horizon starts at that bar's close"},
    }


def simulate(spec: MarketSpec) -> SyntheticMarket:
    """Generate the whole market in memory (deterministic for a given ``spec``).

    Parameters
    ----------
    spec : MarketSpec
        Generator parameters.

    Returns
    -------
    SyntheticMarket
        Frames in the Binance public-data layouts plus the oracle and ground truth.
    """
    spec.validate()
    rng = np.random.default_rng(spec.seed)
    names = symbol_names(spec.n_symbols)
    lat = _simulate_latent(spec, rng)
    n = lat.mu.shape[0]
    exists, listed_from = _listing_mask(spec, rng, n)
    listed = np.arange(n)[:, None] >= np.array(listed_from)[None, :]
    klines, premium, funding, metrics = {}, {}, {}, {}
    for i, name in enumerate(names):
        klines[name] = _kline_frame(lat, i, exists[:, i], rng)
        premium[name] = _premium_frame(lat, i, listed[:, i], rng)
        funding[name] = _funding_frame(lat, i, listed[:, i])
        metrics[name] = _metrics_frame(lat, i, name, listed[:, i], rng)
    onchain, altcoin, dominance = _global_frames(spec, lat, names, listed, rng)
    return SyntheticMarket(
        klines=klines, premium=premium, funding=funding, metrics=metrics, onchain=onchain,
        altcoin=altcoin, dominance=dominance, oracle=_oracle(spec, lat, names, exists),
        ground_truth=_ground_truth(spec, names, listed_from, exists, lat),
    )


def write_market(market: SyntheticMarket, out_dir: str | Path) -> Path:
    """Write the market under ``out_dir`` in the Binance public-data folder layout.

    Layout::

        futures/um/monthly/klines/<SYM>/1h/<SYM>-1h-YYYY-MM.zip
        futures/um/monthly/premiumIndexKlines/<SYM>/1h/<SYM>-1h-YYYY-MM.zip
        futures/um/monthly/fundingRate/<SYM>/<SYM>-fundingRate-YYYY-MM.zip
        futures/um/monthly/metrics/<SYM>/<SYM>-metrics-YYYY-MM.zip
        global/onchain_daily.csv, global/altcoin_index_daily.csv, global/btc_dominance_daily.csv
        ground_truth.json, oracle.parquet
    """
    out = Path(out_dir)
    um = out / "futures" / "um" / "monthly"
    for name in market.klines:
        write_monthly(market.klines[name], "open_time", um / "klines" / name / "1h", f"{name}-1h")
        write_monthly(market.premium[name], "open_time", um / "premiumIndexKlines" / name / "1h", f"{name}-1h")
        write_monthly(market.funding[name], "calc_time", um / "fundingRate" / name, f"{name}-fundingRate")
        write_monthly(market.metrics[name], "create_time", um / "metrics" / name, f"{name}-metrics")
    write_csv(market.onchain, out / "global" / "onchain_daily.csv")
    write_csv(market.altcoin, out / "global" / "altcoin_index_daily.csv")
    write_csv(market.dominance, out / "global" / "btc_dominance_daily.csv")
    write_parquet(market.oracle, out / "oracle.parquet")
    write_json(market.ground_truth, out / "ground_truth.json")
    return out


def generate(out_dir: str | Path, spec: MarketSpec | None = None) -> Path:
    """Simulate and write the market; returns ``out_dir``."""
    spec = spec or MarketSpec()
    logger.info("generating synthetic market: %d symbols x %d days (seed %d, strength %.2f) -> %s",
                spec.n_symbols, spec.days, spec.seed, spec.strength, out_dir)
    return write_market(simulate(spec), out_dir)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.synthetic_market", description=__doc__.split("\n")[0])
    d = MarketSpec()
    p.add_argument("--out", default="data/raw", help="output folder (default: data/raw)")
    p.add_argument("--symbols", type=int, default=d.n_symbols, help="number of symbols")
    p.add_argument("--days", type=int, default=d.days, help="length in days")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed")
    p.add_argument("--start", default=d.start, help="first UTC day, YYYY-MM-DD")
    p.add_argument("--strength", type=float, default=d.strength, help="scale of the planted drivers")
    p.add_argument("--horizons", default=",".join(map(str, d.horizons)), help="oracle horizons in hours")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    from utils.logging_setup import configure_logging

    configure_logging()
    args = _parse_args(argv)
    try:
        spec = MarketSpec(n_symbols=args.symbols, days=args.days, seed=args.seed, start=args.start,
                          strength=args.strength, horizons=tuple(int(h) for h in args.horizons.split(",")))
        generate(args.out, spec)
    except (ProjectError, ValueError) as exc:
        logger.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
