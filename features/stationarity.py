"""Non-stationary level columns: which inputs a model cannot generalise from (pure functions).

A raw price, a cumulative volume or an index level does not mean the same thing next year as it did in
the training span: a model that leans on it learns *when* a row was, not *what* the market was doing, and
a screening statistic computed on it is a spurious-regression artefact. Such columns are excluded from
screening candidates and from prefix-selected model inputs unless a user asks for them explicitly.

The rule (:func:`level_columns`) flags a column when either

1. **its name says so** (:data:`LEVEL_NAMES`, :data:`LEVEL_PATTERNS`): raw OHLC prices, raw volumes and
   trade counts, price-unit indicators (moving-average bands, channels, ATR, MACD lines), cumulative
   volume (OBV), open interest, and logged index / supply / count levels of the global sources; or
2. **the data say so**, for columns whose names the project does not know (fused sources, user columns) and
   for calendar columns; the project's own indicator outputs (returns, ratios, oscillators, volatilities:
   :func:`known_stationary`) are stationary by construction and are not tested, since a slow but
   mean-reverting daily volatility can look like a level over a few years. Two tests must both fire for
   the median symbol:

   * an augmented Dickey-Fuller regression (constant, ``ADF_LAGS`` lagged differences) on each symbol's
     series (subsampled with a stride to at most ``ADF_MAX_POINTS`` points, which keeps a unit root a unit
     root and only makes a stationary series look more stationary) cannot reject a unit root at 5%
     (t-statistic above :data:`ADF_CRITICAL_5PCT`, MacKinnon's asymptotic value). A return or an oscillator
     rejects easily; a random walk fails 95% of the time per symbol;
   * the series spends at least :data:`OUTSIDE_SHARE_MIN` of the rest of the span outside the range it
     covered in its first :data:`FIRST_WINDOW` (a level wanders off; a bounded or periodic series, such as
     an hour-of-day cosine on which ADF is meaningless, or a slow but mean-reverting volatility, comes back).

   Calendar cycles longer than the span (a month-of-year cosine over a few months) fail both, and rightly:
   within such a span they only encode the date.

Everything is computed on the rows given (the caller passes its training span only).
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pandas as pd

#: Exact column names that are price-unit or cumulative levels.
LEVEL_NAMES = frozenset({
    "open", "high", "low", "close", "volume", "quote_volume", "count", "taker_buy_volume",
    "taker_buy_quote_volume", "vwap", "atr_14", "macd", "macd_signal", "macd_hist", "bb_upper", "bb_middle",
    "bb_lower", "kc_upper", "kc_lower", "kc_middle", "obv", "ad", "oi", "oi_value", "log_volume",
})
#: Name patterns of level columns (channels, moving-average values, logged global levels).
LEVEL_PATTERNS = (
    re.compile(r"^dc_(upper|lower|middle)_\d+$"),
    re.compile(r"^(sma|ema|wma)_\d+$"),
    re.compile(r"^ichi_(tenkan|kijun|senkou_a|senkou_b)$"),
    re.compile(r"^pivot_(p|r\d|s\d)$"),
    re.compile(r"^altcoin_index(_log)?$"),
    re.compile(r"^dominance_.*_log$"),
    re.compile(r"^onchain_.*_log$"),
)
ADF_LAGS = 4
ADF_MAX_POINTS = 2000
#: MacKinnon (2010) asymptotic 5% critical value of the ADF t-statistic with a constant.
ADF_CRITICAL_5PCT = -2.86
#: Symbols tested per column at most (the verdict is about the column, not the symbol).
ADF_MAX_SYMBOLS = 20
#: Share of the span that defines the reference range, and the share outside it that marks a level.
FIRST_WINDOW = 0.2
OUTSIDE_SHARE_MIN = 0.3


CALENDAR_PREFIXES = ("hour_", "weekday_", "month_")


@functools.lru_cache(maxsize=1)
def known_stationary() -> frozenset[str]:
    """The project's own indicator columns that are stationary by construction (not levels, not calendar).

    Computed once, on first use, from the indicator code itself (so it follows any new indicator).
    """
    from src.indicating import compute_features
    from src.null_market import null_bars

    bars = null_bars(320, 1, seed=0)["N00"]
    names = compute_features(bars).columns
    return frozenset(c for c in names if not is_level_name(c) and not c.startswith(CALENDAR_PREFIXES))


def is_level_name(name: str) -> bool:
    """True when ``name`` is a known level column (rule 1)."""
    return name in LEVEL_NAMES or any(p.match(name) for p in LEVEL_PATTERNS)


def adf_tstat(x: np.ndarray, lags: int = ADF_LAGS) -> float:
    """ADF t-statistic of ``gamma`` in ``dx_t = a + gamma x_{t-1} + sum_i phi_i dx_{t-i} + e_t`` (NaN if too short).

    More negative is more stationary; compare with :data:`ADF_CRITICAL_5PCT`.
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 10 * (lags + 2) or np.ptp(x) == 0:
        return float("nan")
    dx = np.diff(x)
    y = dx[lags:]
    cols = [np.ones_like(y), x[lags:-1]] + [dx[lags - i:-i] for i in range(1, lags + 1)]
    X = np.column_stack(cols)
    xtx_inv = np.linalg.pinv(X.T @ X)
    beta = xtx_inv @ (X.T @ y)
    resid = y - X @ beta
    var = (resid @ resid / max(len(y) - X.shape[1], 1)) * xtx_inv[1, 1]
    return float(beta[1] / np.sqrt(var)) if var > 0 else float("nan")


def outside_share(x: np.ndarray, first: float = FIRST_WINDOW) -> float:
    """Share of the series after its first ``first`` fraction that lies outside that fraction's [min, max]."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    k = int(len(x) * first)
    if k < 5 or len(x) - k < 5:
        return float("nan")
    head, rest = x[:k], x[k:]
    return float(np.mean((rest < head.min()) | (rest > head.max())))


def _strided(x: np.ndarray, max_points: int) -> np.ndarray:
    step = max(1, int(np.ceil(len(x) / max_points)))
    return x[::step]


def test_symbols(symbols: np.ndarray, max_symbols: int = ADF_MAX_SYMBOLS, seed: int = 0) -> np.ndarray:
    """The symbols :func:`level_tests_by_symbol` tests among the rows' ``symbols`` (a seeded sample of at most
    ``max_symbols``, so a caller can read only those series)."""
    symbols = pd.unique(np.asarray(symbols))
    if len(symbols) > max_symbols:
        symbols = np.random.default_rng(seed).choice(symbols, max_symbols, replace=False)
    return symbols


def level_tests_by_symbol(frame: pd.DataFrame, columns: list[str], symbol_col: str = "symbol",
                          max_symbols: int = ADF_MAX_SYMBOLS, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ADF t-statistics, outside-range shares) per (symbol, column); symbols sampled to ``max_symbols``.

    ``frame`` must be sorted by time within each symbol. Each frame is indexed by symbol, one column per
    feature.
    """
    symbols = test_symbols(frame[symbol_col].to_numpy(), max_symbols, seed) if symbol_col in frame else ["_all"]
    adf, out = {}, {}
    for sym in symbols:  # a loop over at most max_symbols groups; each test is vectorized numpy
        part = frame[frame[symbol_col] == sym] if symbol_col in frame else frame
        values = {c: part[c].to_numpy(dtype=np.float64) for c in columns}
        adf[sym] = {c: adf_tstat(_strided(v, ADF_MAX_POINTS)) for c, v in values.items()}
        out[sym] = {c: outside_share(v) for c, v in values.items()}
    return (pd.DataFrame.from_dict(adf, orient="index", columns=columns),
            pd.DataFrame.from_dict(out, orient="index", columns=columns))


def level_columns(frame: pd.DataFrame, columns: list[str], symbol_col: str = "symbol",
                  test: bool = True) -> dict[str, str]:
    """The non-stationary level columns among ``columns``, each with the reason (see the module docstring).

    Parameters
    ----------
    frame : DataFrame
        Rows of the fit span only, time-sorted within each symbol.
    columns : list of str
        Candidate columns.
    test : bool
        Also run the ADF test on columns whose names are not known levels.

    Returns
    -------
    dict
        ``{column: reason}``; ``reason`` is ``"level name"`` or ``"unit root (ADF t=..; ..)"``.
    """
    out = {c: "level name" for c in columns if is_level_name(c)}
    known = known_stationary()
    rest = [c for c in columns if c not in out and c not in known]
    if test and rest and len(frame):
        adf, outside = level_tests_by_symbol(frame, rest, symbol_col)
        t, share = adf.median(skipna=True), outside.median(skipna=True)
        for c in rest:
            if t[c] > ADF_CRITICAL_5PCT and share[c] >= OUTSIDE_SHARE_MIN:  # NaN compares False: too short
                out[c] = (f"unit root (ADF t={t[c]:.2f} > {ADF_CRITICAL_5PCT}; {share[c]:.0%} of the span outside "
                          f"its first {FIRST_WINDOW:.0%}'s range)")
    return out
