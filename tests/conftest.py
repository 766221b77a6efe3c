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


@pytest.fixture(autouse=True)
def default_ctrl_c():
    """Every test starts and ends with Python's Ctrl-C handler. Lightning ignores SIGINT (SIG_IGN) once a run it
    drives is interrupted; left so, the setting would leak into later tests and into their child processes, which
    inherit it and then ignore the SIGINT a test sends them."""
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
                      merged_pkl=str(root / "pkl" / "full_merged.pkl"), min_bars=20)
    build(cfg)
    return {"raw_dir": root / "raw", "base_csv": root / "merged" / "full_merged.csv"}


def make_z_table(n_bars: int = 3000, symbols: tuple[str, ...] = ("AAA", "BBB"), seed: int = 0,
                 identical: bool = False, strength: float = 0.7) -> pd.DataFrame:
    """A stacking table: a direction target driven by two signals ``a`` and ``b``.

    ``E1`` sees ``a`` (well calibrated); ``E2`` sees the stronger ``b`` but is over-confident (logit x 10),
    so an equal-weight average is dominated by it and neither expert alone has both signals. With
    ``identical=True`` both experts report E1's score; ``strength`` is the signals' standard deviation.
    Columns follow ``pipelines/build_oof_for_z.py``.
    """
    rng = np.random.default_rng(seed)
    frames = []
    ts = pd.date_range("2024-01-01", periods=n_bars, freq="h", tz="UTC")
    for sym in symbols:
        a, b = rng.normal(0, strength, n_bars), rng.normal(0, 1.7 * strength, n_bars)
        y = (rng.random(n_bars) < 1 / (1 + np.exp(-(a + b)))).astype(float)
        e1 = 1 / (1 + np.exp(-a))
        e2 = e1 if identical else 1 / (1 + np.exp(-10 * (b + rng.normal(0, 0.3, n_bars))))
        frames.append(pd.DataFrame({
            "symbol": sym, "period": "1h", "time_idx": np.arange(n_bars), "timestamp": ts,
            "E1__target_binarytrend__score": e1, "E2__target_binarytrend__score": e2,
            "E1__pred_time": ts + pd.Timedelta(hours=1), "E2__pred_time": ts + pd.Timedelta(hours=1),
            "E1__train_window_id": "wf00", "E2__train_window_id": "wf00",
            "regime_vol_level": rng.normal(0.01, 0.001, n_bars), "target_binarytrend": y,
            "target_logreturn": (2 * y - 1) * np.abs(rng.normal(0, 0.01, n_bars)) * 0.1 + rng.normal(0, 0.01, n_bars),
        }))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="session")
def screening_panel():
    """A small screening panel: 3 informative, 3 copies, 12 noise columns, 1 leaky column."""
    from features.selection.synthetic import make_screening_panel

    return make_screening_panel(n_symbols=3, n_rows=3000, n_informative=3, n_copies=3, n_noise=12, ic=0.06, seed=1)


@pytest.fixture(scope="session")
def null_screening_panel():
    """The same shape with no informative column."""
    from features.selection.synthetic import make_screening_panel

    return make_screening_panel(n_symbols=3, n_rows=3000, n_informative=3, n_copies=3, n_noise=12, null=True, seed=2)


@pytest.fixture(scope="session")
def null_ohlcv_panel():
    """Null OHLCV panels (random walks with volatility clustering, fat tails, a common factor) run through the
    real indicator and target code, cached per shape: ``null_ohlcv_panel(n_bars, n_symbols, period, calendar, seed)``.
    Rows are sorted by (timestamp, symbol) as the screening sorts them."""
    from src.null_market import null_panel

    cache: dict[tuple, pd.DataFrame] = {}

    def make(n_bars: int, n_symbols: int, period: str = "1h", calendar: str = "24/7", seed: int = 0) -> pd.DataFrame:
        key = (n_bars, n_symbols, period, calendar, seed)
        if key not in cache:
            cache[key] = null_panel(n_bars, n_symbols, seed=seed, period=period, calendar=calendar).sort_values(
                ["timestamp", "symbol"], ignore_index=True)
        return cache[key].copy()

    return make
