"""Column moments merged part by part (Chan, Golub and LeVeque's parallel update): :class:`Moments`.

Statistics of a table that is never held whole (a fused dataset written series by series, a universe's training
rows scaled block by block) are accumulated from its parts; the merged mean and variance equal those of the
concatenated parts up to floating-point rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Moments:
    """Per-column count of finite values, mean, M2 (sum of squared deviations), min and max (NaN is skipped)."""

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> Moments:
        """The moments of a 2-D array's columns (computed in float64)."""
        values = np.asarray(values, dtype=np.float64)
        ok = ~np.isnan(values)
        n = ok.sum(axis=0).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0, np.nansum(values, axis=0) / np.maximum(n, 1), 0.0)
            m2 = np.nansum((values - mean) ** 2, axis=0)
        empty = np.full(values.shape[1], np.nan)
        lo = np.nanmin(np.where(ok, values, np.inf), axis=0) if len(values) else empty
        hi = np.nanmax(np.where(ok, values, -np.inf), axis=0) if len(values) else empty
        return cls(n, mean, m2, np.where(n > 0, lo, np.nan), np.where(n > 0, hi, np.nan))

    def merge(self, other: Moments) -> Moments:
        """The moments of both parts together."""
        n = self.count + other.count
        delta = other.mean - self.mean
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(n > 0, other.count / np.maximum(n, 1), 0.0)
        return Moments(n, self.mean + delta * share, self.m2 + other.m2 + delta ** 2 * self.count * share,
                       np.fmin(self.lo, other.lo), np.fmax(self.hi, other.hi))

    def std(self) -> np.ndarray:
        """Population standard deviation per column (``ddof=0``, as ``np.nanstd``); NaN where no value."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, np.sqrt(self.m2 / np.maximum(self.count, 1)), np.nan)
