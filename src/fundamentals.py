"""Fundamental feature groups and their point-in-time alignment (pure functions, no I/O).

Every source observation gets an *availability time* (its timestamp plus a publication lag;
a premium-index kline becomes available at its close). A panel row at bar open ``t`` of period
``p`` is decided at ``t + p`` (the bar close) and may only use observations whose availability
time is ``<= t + p``: :func:`asof_join` takes the latest such observation, and turns it into NaN
when it is older than the source's staleness bound (forward fill never crosses that bound).

Derived columns (changes, moving averages, z-scores) are computed on each source's *own* time
grid with time-based windows before the join, so they too only use published values.

Groups (``include_symbol`` keys): ``funding_rate``, ``funding_oi``, ``funding_vol``,
``open_interest``, ``long_short_ratio``, ``taker_ratio``, ``premium``.
Groups (``include_global`` keys): ``premium``, ``altcoin``, ``dominance``, ``onchain``.
See :data:`GROUP_DOCS` for the columns each adds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from utils.errors import DataError

GROUP_DOCS = {
    "symbol": {
        "funding_rate": "last settled funding rate, its change, 3-settlement mean, 30-settlement z-score, "
                        "annualized rate",
        "funding_oi": "funding x open interest: rate x 24h OI log change, funding z x OI z",
        "funding_vol": "funding x volatility: rate / realized vol (rv_24), funding z x volatility percentile",
        "open_interest": "open interest (contracts, value), log changes over 1h/4h/24h, 7-day z-score",
        "long_short_ratio": "top-trader (count, sum) and global long/short ratios, 7-day z, 24h change",
        "taker_ratio": "taker buy/sell volume ratio, its log, 24h mean, 7-day z-score",
        "premium": "premium index (last closed 1h kline), 8h mean, 7-day z-score, 1h change",
    },
    "global": {
        "premium": "cross-sectional mean premium index over all symbols and its 7-day z-score",
        "altcoin": "altcoin index log level, 1d/7d log change, 30-day z-score",
        "dominance": "BTC dominance, 1d/7d change, 30-day z-score",
        "onchain": "every on-chain column: level (log for counts/supplies), 1d change, 30-day z-score",
    },
}
SYMBOL_GROUPS = tuple(GROUP_DOCS["symbol"])
GLOBAL_GROUPS = tuple(GROUP_DOCS["global"])

# Which source each group reads (cross groups read two; funding_vol also reads the base panel).
GROUP_SOURCES = {
    "funding_rate": ("funding",), "funding_oi": ("funding", "metrics"), "funding_vol": ("funding",),
    "open_interest": ("metrics",), "long_short_ratio": ("metrics",), "taker_ratio": ("metrics",),
    "premium": ("premium",),
}
FUNDING_VOL_BASE_COLUMNS = ("rv_24", "vol_percentile_240")
#: Columns of the cross groups (:func:`funding_cross`); the other symbol groups' are SOURCE_GROUP_COLUMNS.
CROSS_GROUP_COLUMNS = {
    "funding_oi": ["funding_oi_rate_x_chg24h", "funding_oi_z_product"],
    "funding_vol": ["funding_vol_rate_over_rv24", "funding_vol_z_x_volpct"],
}


@dataclass
class AlignedSource:
    """Derived columns of one source with the time each row became usable."""

    name: str
    avail: np.ndarray  # int64 ns, sorted ascending
    values: pd.DataFrame  # row-aligned with ``avail``
    audit: dict = field(default_factory=dict)


def _ns(ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    return pd.DatetimeIndex(ts).as_unit("ns").asi8


def time_audit(ts: pd.Series) -> dict:
    """Duplicates, time reversals and gaps (spacing > 1.5x the median) of a source's timestamps."""
    t = _ns(ts)
    d = np.diff(t)
    step = np.median(d[d > 0]) if (d > 0).any() else 0
    return {
        "observations": int(t.size),
        "duplicates": int(pd.Series(t).duplicated().sum()),
        "reversals": int((d < 0).sum()),
        "gaps": int((d > 1.5 * step).sum()) if step else 0,
        "first": str(pd.Timestamp(t.min(), tz="UTC")) if t.size else "",
        "last": str(pd.Timestamp(t.max(), tz="UTC")) if t.size else "",
    }


def _prepare(frame: pd.DataFrame, name: str) -> tuple[pd.DataFrame, dict]:
    """Sort by time and drop duplicated timestamps (the audit keeps the counts)."""
    if "timestamp" not in frame.columns:
        raise DataError(f"{name}: source frame needs a 'timestamp' column")
    audit = time_audit(frame["timestamp"])
    out = frame.sort_values("timestamp", kind="stable").drop_duplicates("timestamp", keep="last")
    return out.set_index("timestamp"), audit


def _value_before(s: pd.Series, delta: pd.Timedelta) -> np.ndarray:
    """For each observation, the latest value of ``s`` at or before its time minus ``delta``."""
    t = _ns(s.index)
    idx = np.searchsorted(t, t - delta.value, side="right") - 1
    vals = s.to_numpy(dtype=np.float64)
    return np.where(idx >= 0, vals[np.clip(idx, 0, None)], np.nan)


def _time_z(s: pd.Series, window: str, min_periods: int) -> np.ndarray:
    roll = s.rolling(window, min_periods=min_periods)
    mean, std = roll.mean().to_numpy(), roll.std().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (s.to_numpy() - mean) / std
    z[~np.isfinite(z)] = np.nan
    return z


def _count_z(s: pd.Series, n: int, min_periods: int) -> np.ndarray:
    roll = s.rolling(n, min_periods=min_periods)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (s - roll.mean()) / roll.std()
    return z.replace([np.inf, -np.inf], np.nan).to_numpy()


def funding_source(funding: pd.DataFrame, lag: pd.Timedelta) -> AlignedSource:
    """Funding settlements -> rate, change, 3-settlement mean, 30-settlement z, annualized rate."""
    f, audit = _prepare(funding, "funding")
    rate = f["funding_rate"].astype(np.float64)
    hours = f["funding_interval_hours"].astype(np.float64) if "funding_interval_hours" in f else 8.0
    values = pd.DataFrame({
        "funding_rate": rate.to_numpy(),
        "funding_rate_chg": rate.diff().to_numpy(),
        "funding_rate_ma3": rate.rolling(3, min_periods=3).mean().to_numpy(),
        "funding_rate_z30": _count_z(rate, 30, 10),
        "funding_rate_annualized": (rate * (24.0 / hours) * 365.0).to_numpy(),
    })
    return AlignedSource("funding", _ns(f.index) + lag.value, values, audit)


def metrics_source(metrics: pd.DataFrame, lag: pd.Timedelta) -> AlignedSource:
    """Open interest, long/short ratios and taker ratio snapshots with time-window derivatives."""
    m, audit = _prepare(metrics, "metrics")
    need = ["sum_open_interest"]
    missing = [c for c in need if c not in m.columns]
    if missing:
        raise DataError(f"metrics: missing column(s) {missing}")
    log_oi = np.log(m["sum_open_interest"].astype(np.float64))
    cols = {
        "oi": m["sum_open_interest"].to_numpy(dtype=np.float64),
        "oi_value": m.get("sum_open_interest_value", pd.Series(np.nan, index=m.index)).to_numpy(dtype=np.float64),
        "oi_logchg_1h": log_oi.to_numpy() - _value_before(log_oi, pd.Timedelta("1h")),
        "oi_logchg_4h": log_oi.to_numpy() - _value_before(log_oi, pd.Timedelta("4h")),
        "oi_logchg_24h": log_oi.to_numpy() - _value_before(log_oi, pd.Timedelta("24h")),
        "oi_z_7d": _time_z(log_oi, "7D", 24),
    }
    nan = pd.Series(np.nan, index=m.index)
    top_count = m.get("count_toptrader_long_short_ratio", nan).astype(np.float64)
    top_sum = m.get("sum_toptrader_long_short_ratio", nan).astype(np.float64)
    glob = m.get("count_long_short_ratio", nan).astype(np.float64)
    taker = m.get("sum_taker_long_short_vol_ratio", nan).astype(np.float64)
    log_taker = np.log(taker.where(taker > 0))
    cols.update({
        "ls_top_count": top_count.to_numpy(), "ls_top_sum": top_sum.to_numpy(), "ls_global": glob.to_numpy(),
        "ls_global_z_7d": _time_z(glob, "7D", 24),
        "ls_top_sum_chg_24h": top_sum.to_numpy() - _value_before(top_sum, pd.Timedelta("24h")),
        "taker_ls_ratio": taker.to_numpy(), "taker_ls_log": log_taker.to_numpy(),
        "taker_ls_ma_24h": log_taker.rolling("24h", min_periods=1).mean().to_numpy(),
        "taker_ls_z_7d": _time_z(log_taker, "7D", 24),
    })
    return AlignedSource("metrics", _ns(m.index) + lag.value, pd.DataFrame(cols), audit)


def premium_source(premium: pd.DataFrame, interval: pd.Timedelta, lag: pd.Timedelta,
                   prefix: str = "premium_index") -> AlignedSource:
    """Premium-index klines (available at their close) -> level, 8h mean, 7-day z, 1h change."""
    p, audit = _prepare(premium, "premium")
    close = p["close"].astype(np.float64)
    values = pd.DataFrame({
        prefix: close.to_numpy(),
        f"{prefix}_ma_8h": close.rolling("8h", min_periods=1).mean().to_numpy(),
        f"{prefix}_z_7d": _time_z(close, "7D", 24),
        f"{prefix}_chg_1h": close.to_numpy() - _value_before(close, pd.Timedelta("1h")),
    })
    return AlignedSource("premium", _ns(p.index) + interval.value + lag.value, values, audit)


def global_premium_frame(premiums: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Cross-sectional mean premium close per kline open time over all symbols."""
    if not premiums:
        raise DataError("global premium requested but no premiumIndexKlines files were found")
    wide = pd.concat({s: f.set_index("timestamp")["close"] for s, f in premiums.items()}, axis=1)
    mean = wide.sort_index().mean(axis=1)
    return pd.DataFrame({"timestamp": mean.index, "close": mean.to_numpy()})


def daily_source(daily: pd.DataFrame, prefix: str, lag: pd.Timedelta, log_columns: bool = True) -> AlignedSource:
    """A global daily table (``date`` + numeric columns) -> level, 1d/7d change, 30-day z per column.

    ``date`` is the day described; with the default lag of one day a value becomes usable at
    the end of that day.
    """
    d, audit = _prepare(daily.rename(columns={"date": "timestamp"}), prefix)
    cols = {}
    for name in d.columns:
        raw = d[name].astype(np.float64)
        positive = bool((raw.dropna() > 0).all()) and log_columns
        level = np.log(raw) if positive else raw
        tag = f"{prefix}_{name}" if not name.startswith(prefix) else name
        cols[f"{tag}_log" if positive else tag] = level.to_numpy()
        cols[f"{tag}_chg_1d"] = level.to_numpy() - _value_before(level, pd.Timedelta("1D"))
        cols[f"{tag}_chg_7d"] = level.to_numpy() - _value_before(level, pd.Timedelta("7D"))
        cols[f"{tag}_z_30d"] = _time_z(level, "30D", 10)
    return AlignedSource(prefix, _ns(d.index) + lag.value, pd.DataFrame(cols), audit)


def asof_join(decision_ns: np.ndarray, source: AlignedSource,
              max_staleness: pd.Timedelta) -> tuple[pd.DataFrame, np.ndarray]:
    """Latest observation available at each decision time, NaN when none or too old.

    Parameters
    ----------
    decision_ns : ndarray of int64
        Decision times (bar close) of the rows, in ns; need not be sorted.
    source : AlignedSource
        Source with sorted availability times.
    max_staleness : Timedelta
        Older observations are not carried forward.

    Returns
    -------
    (DataFrame, ndarray of bool)
        Joined values (one row per decision time) and the rows made NaN because the latest
        available observation was older than ``max_staleness``.
    """
    idx = np.searchsorted(source.avail, decision_ns, side="right") - 1
    has = idx >= 0
    safe = np.clip(idx, 0, None)
    fresh = has & (decision_ns - source.avail[safe] <= max_staleness.value) if source.avail.size else has
    block = source.values.to_numpy(dtype=np.float64)[safe] if source.avail.size else \
        np.full((decision_ns.size, source.values.shape[1]), np.nan)
    block[~fresh] = np.nan
    return pd.DataFrame(block, columns=source.values.columns), has & ~fresh


def funding_cross(joined: pd.DataFrame, group: str, base: pd.DataFrame) -> pd.DataFrame:
    """Columns of the cross groups ``funding_oi`` and ``funding_vol`` from already-joined columns."""
    if group == "funding_oi":
        return pd.DataFrame({
            "funding_oi_rate_x_chg24h": joined["funding_rate"].to_numpy() * joined["oi_logchg_24h"].to_numpy(),
            "funding_oi_z_product": joined["funding_rate_z30"].to_numpy() * joined["oi_z_7d"].to_numpy(),
        })
    missing = [c for c in FUNDING_VOL_BASE_COLUMNS if c not in base.columns]
    if missing:
        raise DataError(f"include_symbol.funding_vol needs base panel column(s) {missing}; "
                        f"rebuild the panel with src/build_full_merged.py or disable funding_vol")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = joined["funding_rate"].to_numpy() / base["rv_24"].to_numpy(dtype=np.float64)
    ratio[~np.isfinite(ratio)] = np.nan
    return pd.DataFrame({
        "funding_vol_rate_over_rv24": ratio,
        "funding_vol_z_x_volpct": joined["funding_rate_z30"].to_numpy()
        * base["vol_percentile_240"].to_numpy(dtype=np.float64),
    })


def group_columns(group: str) -> list[str]:
    """The fused columns of symbol group ``group``."""
    return list(SOURCE_GROUP_COLUMNS.get(group) or CROSS_GROUP_COLUMNS[group])


SOURCE_GROUP_COLUMNS = {
    "funding_rate": ["funding_rate", "funding_rate_chg", "funding_rate_ma3", "funding_rate_z30",
                     "funding_rate_annualized"],
    "open_interest": ["oi", "oi_value", "oi_logchg_1h", "oi_logchg_4h", "oi_logchg_24h", "oi_z_7d"],
    "long_short_ratio": ["ls_top_count", "ls_top_sum", "ls_global", "ls_global_z_7d", "ls_top_sum_chg_24h"],
    "taker_ratio": ["taker_ls_ratio", "taker_ls_log", "taker_ls_ma_24h", "taker_ls_z_7d"],
    "premium": ["premium_index", "premium_index_ma_8h", "premium_index_z_7d", "premium_index_chg_1h"],
}
