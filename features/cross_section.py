"""Market context: the cross-sectional mean of an input over the symbols that have a bar at the same time.

A model trained on one symbol's window at a time sees only that symbol's history; what the whole market did over the
same bars (its common trend, a market-wide flow) is invisible to it unless it is an input. ``market_<name>`` is the
mean of input ``name`` over every symbol with a row at that timestamp, the symbol itself included. It is
point-in-time: the row at ``t`` averages values that are themselves known at the close of bar ``t`` (the bars of one
timestamp close together), so it uses nothing later than the row's own inputs do.

Used by :func:`models.window_dataset.build_window_data` for the leaf's ``features.market`` list, on the scaled
inputs (so each symbol counts in its own units when ``features.normalize: group``, or in the training span's common
units otherwise).
"""

from __future__ import annotations

import numpy as np

MARKET_PREFIX = "market_"


def market_names(columns: list[str]) -> list[str]:
    """The input names of the market means of ``columns`` (``market_<column>``)."""
    return [MARKET_PREFIX + c for c in columns]


def cross_sectional_mean(values: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Mean of each column of ``values`` over the rows that share a timestamp, broadcast back to every row.

    Parameters
    ----------
    values : ndarray, shape (n, k)
        One row per (symbol, bar); non-finite values are left out of their timestamp's mean.
    timestamps : ndarray, shape (n,)
        The bar of each row (any comparable dtype; int64 nanoseconds in the window data).

    Returns
    -------
    ndarray, shape (n, k), float32
        A new array (``values`` is not modified); 0 where a timestamp has no finite value in a column.
    """
    values = np.asarray(values)
    if values.ndim != 2 or len(values) != len(timestamps):
        raise ValueError(f"values of shape {values.shape} and {len(timestamps)} timestamps: need (n, k) and n")
    _, group = np.unique(np.asarray(timestamps), return_inverse=True)
    group = group.ravel()
    n_groups = int(group.max()) + 1 if len(group) else 0
    out = np.empty(values.shape, dtype=np.float32)
    for j in range(values.shape[1]):  # a loop over columns (a handful), each one vectorized over rows
        col = values[:, j].astype(np.float64)
        ok = np.isfinite(col)
        total = np.bincount(group[ok], weights=col[ok], minlength=n_groups)
        count = np.bincount(group[ok], minlength=n_groups)
        mean = np.divide(total, count, out=np.zeros(n_groups), where=count > 0)
        out[:, j] = mean[group]
    return out
