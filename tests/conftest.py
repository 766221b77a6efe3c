"""Synthetic data factories shared by the test suite (small, fast, deterministic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.synthetic_market import MarketSpec, simulate, write_market


def make_bars(n: int = 600, seed: int = 0, freq: str = "1h", start: str = "2024-01-01",
              weekdays_only: bool = False, vol: float = 0.01) -> pd.DataFrame:
    """Random-walk OHLCV bars with a UTC ``timestamp`` column.

    ``weekdays_only`` drops Saturday/Sunday bars, like stock or FX data.
    """
    rng = np.random.default_rng(seed)
    ts = pd.date_range(pd.Timestamp(start, tz="UTC"), periods=n, freq=freq)
    if weekdays_only:
        ts = ts[ts.dayofweek < 5]
    m = len(ts)
    close = 100 * np.exp(np.cumsum(rng.normal(0, vol, m)))
    open_ = np.concatenate([[close[0]], close[:-1]]) * np.exp(rng.normal(0, vol / 5, m))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, vol / 2, m)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, vol / 2, m)))
    volume = np.exp(rng.normal(8, 0.5, m))
    return pd.DataFrame({"timestamp": ts, "open": open_, "high": high, "low": low, "close": close,
                         "volume": volume, "quote_volume": volume * close,
                         "count": rng.integers(50, 500, m), "taker_buy_volume": volume * 0.5})


def kline_csv_text(bars: pd.DataFrame, header: bool = True, unit: str = "ms") -> str:
    """Bars rendered in the Binance kline CSV layout."""
    mult = {"ms": 1, "us": 1000}[unit]
    open_ms = bars["timestamp"].dt.as_unit("ms").astype("int64").to_numpy() * mult
    frame = pd.DataFrame({
        "open_time": open_ms, "open": bars["open"], "high": bars["high"], "low": bars["low"],
        "close": bars["close"], "volume": bars["volume"], "close_time": open_ms + 3_599_999 * mult,
        "quote_volume": bars["quote_volume"], "count": bars["count"],
        "taker_buy_volume": bars["taker_buy_volume"], "taker_buy_quote_volume": bars["taker_buy_volume"],
        "ignore": 0,
    })
    return frame.to_csv(index=False, header=header)


@pytest.fixture
def bars() -> pd.DataFrame:
    """600 hourly bars of one symbol."""
    return make_bars()


@pytest.fixture(scope="session")
def small_spec() -> MarketSpec:
    """A 3-symbol, 60-day synthetic market spec."""
    return MarketSpec(n_symbols=3, days=60, seed=11, onchain_delay_days=10)


@pytest.fixture(scope="session")
def small_market(small_spec):
    """The simulated small market (in memory)."""
    return simulate(small_spec)


@pytest.fixture(scope="session")
def small_raw_dir(tmp_path_factory, small_market) -> Path:
    """The small market written in Binance layout to a temporary raw folder (read-only use)."""
    out = tmp_path_factory.mktemp("raw")
    write_market(small_market, out)
    return out


@pytest.fixture(scope="session")
def small_panel(tmp_path_factory, small_market):
    """Raw folder plus merged 1h/4h/1d panel of the small market: ``{'raw_dir', 'base_csv'}`` (read-only)."""
    from src.build_config import BuildConfig
    from src.build_full_merged import build

    root = tmp_path_factory.mktemp("panel")
    write_market(small_market, root / "raw")
    cfg = BuildConfig(raw_dir=str(root / "raw"), targeted_dir=str(root / "targeted"),
                      merged_csv=str(root / "merged" / "full_merged.csv"),
                      merged_pkl=str(root / "pkl" / "full_merged.pkl"))
    build(cfg)
    return {"raw_dir": root / "raw", "base_csv": root / "merged" / "full_merged.csv"}
