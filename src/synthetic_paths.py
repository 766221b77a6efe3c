"""Numeric building blocks of the synthetic market: AR(1) paths, fat-tailed common-factor shocks, lags."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import signal


def ar1(rng: np.random.Generator, shape: tuple[int, ...], phi: float, innov: np.ndarray | None = None) -> np.ndarray:
    """Stationary unit-variance AR(1) along axis 0 (vectorized with ``lfilter``)."""
    e = rng.standard_normal(shape) if innov is None else innov
    x = signal.lfilter([math.sqrt(1 - phi**2)], [1.0, -phi], e, axis=0)
    return x


def shocks(rng: np.random.Generator, n: int, beta: np.ndarray, nu: float) -> np.ndarray:
    """Standardized multivariate Student-t shocks with a common factor, shape (n, k)."""
    k = beta.size
    chi2 = rng.chisquare(nu, size=(n, 1))
    z = beta * rng.standard_normal((n, 1)) + np.sqrt(1 - beta**2) * rng.standard_normal((n, k))
    return np.sqrt((nu - 2) / chi2) * z


def abs_t_mean(nu: float) -> float:
    """E|eps| for a standardized Student-t with ``nu`` degrees of freedom."""
    raw = 2 * math.sqrt(nu) * math.gamma((nu + 1) / 2) / (math.sqrt(math.pi) * (nu - 1) * math.gamma(nu / 2))
    return raw * math.sqrt((nu - 2) / nu)


def epoch_ms(times: pd.DatetimeIndex) -> np.ndarray:
    """Milliseconds since the epoch, whatever the index's resolution."""
    return times.as_unit("ms").asi8


def lagged(x: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """``x`` shifted one bar later along axis 0 (row j holds x[j-1])."""
    out = np.empty_like(x)
    out[0] = fill
    out[1:] = x[:-1]
    return out


def rolling_sum(x: np.ndarray, w: int) -> np.ndarray:
    c = np.cumsum(x, axis=0)
    out = c.copy()
    out[w:] = c[w:] - c[:-w]
    return out


def funding_last_published(premium: np.ndarray, hours: np.ndarray,
                           fill: float) -> tuple[np.ndarray, np.ndarray]:
    """Funding settled every 8h from the mean premium of the 8 bars before settlement.

    Returns the settlement values (one per bar whose *close* is a settlement time, NaN
    elsewhere) and, for every bar, the last funding rate published at or before its close (``fill`` before
    the first settlement).
    """
    mean8 = rolling_sum(premium, 8) / 8
    settles = ((hours + 1) % 8 == 0)[:, None]  # bar closes at 00/08/16 UTC
    rate = np.clip(mean8, -0.0075, 0.0075)
    published = np.where(settles, rate, np.nan)
    last = pd.DataFrame(published).ffill().fillna(fill).to_numpy()
    return published, last


def extreme(fz: np.ndarray) -> np.ndarray:
    return np.sign(fz) * np.maximum(np.abs(fz) - 1.0, 0.0)
