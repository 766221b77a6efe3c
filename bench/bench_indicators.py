"""Indicator benchmark: full feature-build throughput and time ratios against TA-Lib.

Usage::

    python bench/bench_indicators.py [--rows 1000000] [--repeats 3]

Prints, on one synthetic random-walk series of ``--rows`` bars:

* the throughput of ``compute_features`` (the whole feature set, rows/s), and
* for every indicator TA-Lib also defines, our time / TA-Lib's time (best of ``--repeats``;
  below 1.0 means faster than TA-Lib) and the largest relative difference after warm-up.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from src import indicators as ind
from src.indicating import compute_features


def _series(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n)))
    ts = pd.date_range("2000-01-01", periods=n, freq="1h", tz="UTC")
    return pd.DataFrame({"timestamp": ts, "open": open_, "high": high, "low": low, "close": close,
                         "volume": np.exp(rng.normal(8, 0.5, n))})


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _pairs(talib, h, lo, c, v):
    return {
        "RSI": (lambda: ind.rsi(c), lambda: talib.RSI(c)),
        "ATR": (lambda: ind.atr(h, lo, c), lambda: talib.ATR(h, lo, c)),
        "MACD": (lambda: ind.macd(c)[0], lambda: talib.MACD(c)[0]),
        "BBANDS": (lambda: ind.bbands(c)[0], lambda: talib.BBANDS(c, 20, 2, 2)[0]),
        "ADX": (lambda: ind.adx(h, lo, c)[0], lambda: talib.ADX(h, lo, c)),
        "STOCH": (lambda: ind.stoch(h, lo, c)[1], lambda: talib.STOCH(h, lo, c)[1]),
        "CCI": (lambda: ind.cci(h, lo, c), lambda: talib.CCI(h, lo, c)),
        "WILLR": (lambda: ind.willr(h, lo, c), lambda: talib.WILLR(h, lo, c)),
        "MFI": (lambda: ind.mfi(h, lo, c, v), lambda: talib.MFI(h, lo, c, v)),
        "OBV": (lambda: ind.obv(c, v), lambda: talib.OBV(c, v)),
        "ROC": (lambda: ind.roc(c), lambda: talib.ROC(c)),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    bars = _series(args.rows)
    full = _best(lambda: compute_features(bars), args.repeats)
    n_cols = compute_features(bars.iloc[:1000]).shape[1]
    print(f"rows={args.rows:,}  feature columns={n_cols}")
    print(f"full feature build: {full:.2f} s  ->  {args.rows / full:,.0f} rows/s")
    try:
        import talib
    except ImportError:
        print("TA-Lib not installed: ratios skipped (pip install ta-lib)")
        return 0
    h, lo, c, v = (bars[k].to_numpy() for k in ("high", "low", "close", "volume"))
    print(f"{'indicator':10s} {'ours_s':>8s} {'talib_s':>8s} {'ratio':>7s} {'max_rel_diff':>13s} {'max_abs_diff':>13s}")
    ratios = []
    for name, (ours, ref) in _pairs(talib, h, lo, c, v).items():
        t_ours, t_ref = _best(ours, args.repeats), _best(ref, args.repeats)
        a, b = np.asarray(ours())[300:], np.asarray(ref())[300:]
        # Relative error only where the reference is not ~0: near zero TA-Lib's running sums
        # leave ~1e-13 of round-off (e.g. MFI when every flow is negative) that we compute as 0.
        big = np.abs(b) > 1e-6 * np.nanmax(np.abs(b))
        rel = np.nanmax(np.abs(a - b)[big] / np.abs(b[big]))
        absolute = np.nanmax(np.abs(a - b))
        ratios.append(t_ours / t_ref)
        print(f"{name:10s} {t_ours:8.4f} {t_ref:8.4f} {t_ours / t_ref:7.2f} {rel:13.2e} {absolute:13.2e}")
    print(f"geometric-mean time ratio vs TA-Lib: {np.exp(np.mean(np.log(ratios))):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
