"""Statistics shared by the screening stages (pure numpy / pandas).

* :func:`newey_west_tstat` - t-statistic of a mean under autocorrelation (Bartlett kernel). Overlapping
  labels and persistent features make per-bar products autocorrelated; a naive t overstates
  significance several-fold, so the lag must be at least twice the label horizon.
* :func:`benjamini_hochberg` - false-discovery-rate control over many features.
* :func:`vif_from_corr` - every column's variance inflation factor at once: the diagonal of the inverse
  correlation matrix (no regression per column).
* :func:`correlation_clusters` - connected groups of columns whose |correlation| exceeds a threshold
  (single linkage), with the best-scored member as representative.
* :func:`time_ic` - Spearman IC per date (pooled over symbols and bars), its mean, ICIR and
  Newey-West t.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def newey_west_tstat(x: np.ndarray, lag: int) -> float:
    """t-statistic of ``mean(x)`` with a Newey-West (Bartlett) long-run variance of ``lag`` lags."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 3:
        return float("nan")
    e = x - x.mean()
    lrv = e @ e / n
    for k in range(1, min(lag, n - 1) + 1):
        lrv += 2.0 * (1.0 - k / (lag + 1.0)) * (e[k:] @ e[:-k]) / n
    if lrv <= 0:
        return float("nan")
    return float(x.mean() / np.sqrt(lrv / n))


def two_sided_p(t: np.ndarray | float) -> np.ndarray:
    """Normal two-sided p-value of t-statistics (NaN stays NaN)."""
    return 2.0 * stats.norm.sf(np.abs(np.asarray(t, dtype=np.float64)))


def benjamini_hochberg(p: np.ndarray, q: float) -> np.ndarray:
    """Boolean mask of discoveries at false-discovery rate ``q`` (NaN p-values are never discoveries)."""
    p = np.asarray(p, dtype=np.float64)
    ok = np.isfinite(p)
    out = np.zeros(len(p), dtype=bool)
    m = int(ok.sum())
    if m == 0:
        return out
    idx = np.flatnonzero(ok)
    order = idx[np.argsort(p[ok])]
    passed = p[order] <= q * np.arange(1, m + 1) / m
    if passed.any():
        out[order[: np.flatnonzero(passed).max() + 1]] = True
    return out


def vif_from_corr(corr: np.ndarray, ridge: float = 1e-8) -> np.ndarray:
    """VIF of every column: ``diag(inv(R))`` of the correlation matrix (a tiny ridge keeps it invertible)."""
    r = np.asarray(corr, dtype=np.float64)
    r = np.nan_to_num(r) + ridge * np.eye(len(r))
    return np.diag(np.linalg.pinv(r, hermitian=True))


def correlation_clusters(corr: pd.DataFrame, threshold: float, score: pd.Series | None = None) -> pd.Series:
    """Cluster id per column: single-linkage groups with ``|corr| >= threshold`` (ids 0..k-1).

    With ``score`` the cluster ids are ordered by the best member's score (not needed for correctness).
    """
    names = list(corr.columns)
    adj = np.abs(np.nan_to_num(corr.to_numpy())) >= threshold
    labels = np.full(len(names), -1)
    current = 0
    for start in range(len(names)):
        if labels[start] >= 0:
            continue
        stack = [start]
        labels[start] = current
        while stack:  # graph traversal over columns, not rows: a few hundred nodes at most
            node = stack.pop()
            for nb in np.flatnonzero(adj[node] & (labels < 0)):
                labels[nb] = current
                stack.append(nb)
        current += 1
    return pd.Series(labels, index=names, name="cluster")


def cluster_representatives(clusters: pd.Series, score: pd.Series) -> pd.Series:
    """Boolean per column: the highest-scoring member of its cluster."""
    best = score.reindex(clusters.index).fillna(-np.inf).groupby(clusters).idxmax()
    return pd.Series(clusters.index.isin(best.to_numpy()), index=clusters.index)


def time_ic(x: pd.DataFrame, y: pd.Series, dates: pd.Series, lag: int) -> pd.DataFrame:
    """Spearman IC of each column of ``x`` with ``y`` per date (pooled over symbols and bars), aggregated.

    Parameters
    ----------
    x, y : feature frame and target, same rows.
    dates : per-row date label (e.g. the UTC day); the IC is computed within each date.
    lag : Newey-West lag in dates for the t-statistic of the mean IC.

    Returns
    -------
    DataFrame indexed by feature: ``ic`` (mean of the per-date series), ``ic_std``, ``icir``
    (mean / std), ``t_nw``, ``p`` (two-sided) and ``n_dates``.
    """
    key = dates.to_numpy()
    rx = x.groupby(key).rank(pct=True)
    ry = y.groupby(key).rank(pct=True)
    dx = rx - rx.groupby(key).transform("mean")
    dy = ry - ry.groupby(key).transform("mean")
    cov = dx.mul(dy, axis=0).groupby(key).mean()
    sx = (dx**2).groupby(key).mean() ** 0.5
    sy = (dy**2).groupby(key).mean() ** 0.5
    series = cov.div(sx).div(sy, axis=0).replace([np.inf, -np.inf], np.nan).sort_index()  # [dates, features]
    t = np.array([newey_west_tstat(series[c].to_numpy(), lag) for c in series.columns])
    mean, std = series.mean(), series.std()
    return pd.DataFrame({"ic": mean, "ic_std": std, "icir": mean / std.replace(0, np.nan), "t_nw": t,
                         "p": two_sided_p(t), "n_dates": series.notna().sum()}, index=x.columns)


def autocorr_length(x: np.ndarray, max_lag: int = 2000) -> int:
    """Lag at which a series' autocorrelation first drops below 1/e (its decorrelation length, >= 1)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 10 or x.std() == 0:
        return 1
    e = (x - x.mean()) / x.std()
    n = len(e)
    f = np.fft.rfft(e, 2 * n)
    ac = np.fft.irfft(f * np.conj(f))[: min(max_lag, n - 1) + 1] / n
    below = np.flatnonzero(ac < np.exp(-1))
    return int(below[0]) if len(below) else min(max_lag, n - 1)
