"""Statistics shared by the screening stages (pure numpy / pandas).

* :func:`newey_west_tstat` - t-statistic of a mean under autocorrelation (Bartlett kernel). Overlapping
  labels and persistent features make per-bar products autocorrelated; a naive t overstates
  significance several-fold, so the lag must be at least twice the label horizon.
* :func:`benjamini_hochberg` - false-discovery-rate control over many features.
* :func:`vif_from_corr` - every column's variance inflation factor at once: the diagonal of the inverse
  correlation matrix (no regression per column).
* :func:`correlation_clusters` - connected groups of columns whose |correlation| exceeds a threshold
  (single linkage), with the best-scored member as representative.
* :func:`time_series_ic` - Spearman IC of a feature against the target along each symbol's own time
  series, combined across symbols, with a Newey-West t over time. Right for a panel of any width, one
  symbol included.
* :func:`cross_sectional_ic` - Spearman IC across symbols per timestamp (only timestamps with at least
  ``min_symbols`` symbols), its mean and Newey-West t.

Why not an IC per day or week pooled over bars: with few symbols that is a time-series correlation inside
a short window, and demeaning inside the window biases every feature that follows the price path (on a pure
random walk ``dist_sma_20`` scored t = -11). Per-symbol standardisation over the whole span has a bias of
order persistence / length only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def newey_west_tstat(x: np.ndarray, lag: int) -> float:
    """t-statistic of ``mean(x)`` with a Newey-West (Bartlett) long-run variance of ``lag`` lags."""
    return float(newey_west_tstats(np.asarray(x, dtype=np.float64)[:, None], lag)[0])


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


def newey_west_tstats(u: np.ndarray, lag: int) -> np.ndarray:
    """:func:`newey_west_tstat` of every column of ``u`` ``[n, k]`` at once (NaN rows of a column are left out).

    NaN entries are set to the column mean, so they add nothing to the autocovariances, and each column's
    sample size is its count of finite values.
    """
    u = np.asarray(u, dtype=np.float64)
    ok = np.isfinite(u)
    n = ok.sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.where(ok, u, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)
        e = np.where(ok, u - mean, 0.0)
        lrv = (e * e).sum(axis=0) / n
        for k in range(1, min(lag, u.shape[0] - 1) + 1):  # a loop over lags; each is one vectorized product
            lrv += 2.0 * (1.0 - k / (lag + 1.0)) * (e[k:] * e[:-k]).sum(axis=0) / n
        t = mean / np.sqrt(lrv / n)
    return np.where((n >= 3) & (lrv > 0), t, np.nan)


def standardized_ranks(x: pd.DataFrame, groups: np.ndarray) -> pd.DataFrame:
    """Percentile ranks within each group, centred and scaled to unit variance within the group (NaN kept)."""
    r = x.groupby(groups).rank(pct=True)
    g = r.groupby(groups)
    z = (r - g.transform("mean")) / g.transform("std", ddof=0)
    return z.replace([np.inf, -np.inf], np.nan)


def time_series_ic(x: pd.DataFrame, y: pd.Series, symbols: np.ndarray, timestamps: np.ndarray,
                   lag: int) -> pd.DataFrame:
    """Per-symbol time-series Spearman IC of each column of ``x`` with ``y``, combined across symbols.

    Within each symbol, feature and target are turned into standardized ranks over the rows given, so the
    mean of their product over a symbol's rows is that symbol's Spearman correlation. The products are
    averaged across the symbols present at each timestamp (which absorbs their common shocks) and the
    resulting time series ``u_t`` gives the IC (its mean) and a Newey-West t-statistic with ``lag`` lags (in
    bars), so overlapping labels and persistent features do not overstate significance.

    Returns
    -------
    DataFrame indexed by feature: ``ic``, ``t_nw``, ``p`` (two-sided), ``n_obs`` (timestamps),
    ``n_symbols`` (symbols with a finite per-symbol IC) and ``symbol_sign_rate`` (share of those symbols
    whose own IC has the sign of the combined one).
    """
    return ic_from_ranks(standardized_ranks(x, symbols), standardized_ranks(y.to_frame("y"), symbols)["y"],
                         symbols, timestamps, lag)


def ic_from_ranks(zx: pd.DataFrame, zy: pd.Series, symbols: np.ndarray, timestamps: np.ndarray,
                  lag: int) -> pd.DataFrame:
    """:func:`time_series_ic` from standardized ranks already computed (rows where ``zy`` is NaN are skipped)."""
    prod = zx.mul(zy, axis=0)
    u = prod.groupby(timestamps).mean().sort_index()
    t = newey_west_tstats(u.to_numpy(), lag)
    ic = u.mean()
    per_symbol = prod.groupby(symbols).mean()
    sign_rate = (np.sign(per_symbol) == np.sign(ic)).where(per_symbol.notna()).mean()
    return pd.DataFrame({"ic": ic, "t_nw": t, "p": two_sided_p(t), "n_obs": u.notna().sum(),
                         "n_symbols": per_symbol.notna().sum(), "symbol_sign_rate": sign_rate}, index=zx.columns)


def lagged_within(x: pd.DataFrame, symbols: np.ndarray, bars: int) -> pd.DataFrame:
    """``x`` shifted ``bars`` rows later within each symbol (rows must be time-ordered within symbols)."""
    return x.groupby(symbols).shift(bars)


def rank_autocorr(x: pd.DataFrame, symbols: np.ndarray) -> pd.Series:
    """Lag-1 Spearman autocorrelation of each column within symbols (averaged over rows)."""
    zx = standardized_ranks(x, symbols)
    return zx.mul(lagged_within(zx, symbols, 1)).mean()


def cross_sectional_ic(x: pd.DataFrame, y: pd.Series, timestamps: np.ndarray, lag: int,
                       min_symbols: int) -> pd.DataFrame:
    """Spearman IC across symbols per timestamp (timestamps with >= ``min_symbols`` symbols only), aggregated.

    Returns
    -------
    DataFrame indexed by feature: ``ic`` (mean of the per-timestamp series), ``ic_std``, ``icir``, ``t_nw``,
    ``p`` and ``n_obs`` (timestamps used); all NaN when no timestamp has enough symbols.
    """
    counts = y.notna().groupby(timestamps).transform("sum").to_numpy()
    keep = counts >= min_symbols
    if not keep.any():
        nan = np.full(x.shape[1], np.nan)
        return pd.DataFrame({"ic": nan, "ic_std": nan, "icir": nan, "t_nw": nan, "p": nan,
                             "n_obs": np.zeros(x.shape[1], dtype=int)}, index=x.columns)
    key = np.asarray(timestamps)[keep]
    xs, ys = x[keep], y[keep]
    dx = standardized_ranks(xs, key)
    dy = standardized_ranks(ys.to_frame("y"), key)["y"]
    series = dx.mul(dy, axis=0).groupby(key).mean().sort_index()  # [timestamps, features]
    t = newey_west_tstats(series.to_numpy(), lag)
    mean, std = series.mean(), series.std()
    return pd.DataFrame({"ic": mean, "ic_std": std, "icir": mean / std.replace(0, np.nan), "t_nw": t,
                         "p": two_sided_p(t), "n_obs": series.notna().sum()}, index=x.columns)


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
