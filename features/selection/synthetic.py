"""A screening panel with known answers (tests, ``bench/bench_screening.py``).

Per symbol, every feature is an AR(1) series with the same persistence, so persistence alone gives
nothing away:

* ``inf_0..`` informative: the 1-bar forward return loads on each of them;
* ``copy_0..`` a noisy near-copy of the informative feature of the same number (|corr| ~ 0.98);
* ``noise_0..`` pure noise;
* ``leak_centered`` future-derived: a centred 5-bar mean of the target (it contains the target itself).

``target_logreturn`` (regression, horizon 1) and ``target_binarytrend`` (its sign, classification).
With ``null=True`` the target is independent of every feature (and there is no leaky column).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import lfilter


def _ar1(rng: np.random.Generator, n: int, k: int, rho: float) -> np.ndarray:
    shocks = rng.standard_normal((n, k)) * np.sqrt(1 - rho**2)
    return lfilter([1.0], [1.0, -rho], shocks, axis=0)  # unit-variance AR(1), vectorized over columns


def make_screening_panel(n_symbols: int = 5, n_rows: int = 20_000, n_informative: int = 10, n_copies: int = 10,
                         n_noise: int = 100, leaky: bool = True, null: bool = False, rho: float = 0.97,
                         ic: float = 0.03, seed: int = 0) -> pd.DataFrame:
    """Long hourly panel ``symbol, period, timestamp, time_idx`` + features + targets (see module doc)."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2021-01-01", periods=n_rows, freq="h", tz="UTC")
    frames = []
    for s in range(n_symbols):
        inf = _ar1(rng, n_rows, n_informative, rho)
        noise = _ar1(rng, n_rows, n_noise, rho)
        eps = rng.standard_normal(n_rows)
        signal = inf.sum(axis=1) * ic if not null else 0.0
        y = (signal + eps * np.sqrt(max(1 - n_informative * ic**2, 0.1))) * 0.01
        cols = {"symbol": f"S{s:02d}", "period": "1h", "timestamp": ts, "time_idx": np.arange(n_rows)}
        cols.update({f"inf_{i}": inf[:, i] for i in range(n_informative)})
        cols.update({f"copy_{i}": inf[:, i % n_informative] + 0.2 * rng.standard_normal(n_rows)
                     for i in range(n_copies)})
        cols.update({f"noise_{i}": noise[:, i] for i in range(n_noise)})
        frame = pd.DataFrame(cols)
        if leaky and not null:
            frame["leak_centered"] = pd.Series(y).rolling(5, center=True, min_periods=1).mean().to_numpy()
        frame["target_logreturn"] = y
        frame["target_binarytrend"] = (y > 0).astype(np.float64)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
