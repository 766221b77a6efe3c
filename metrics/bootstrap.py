"""Paired block bootstrap over time: is model A's score different from model B's on the same rows?

Rows are resampled in blocks of consecutive bars holding every symbol's rows of that span, so the cross-section's
common moves and the serial dependence of overlapping labels stay together. Both models are scored on the same
resampled rows (paired), so the interval is that of the difference, not of two separate scores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from utils.timeline import period_delta

logger = logging.getLogger(__name__)

#: A bootstrap over fewer blocks than this understates the spread (a daily hold-out of 7 months holds 4
#: blocks of 48 bars): blocks are shortened to reach it, down to ``min_block_bars``.
MIN_BLOCKS = 20


def time_blocks(ts: pd.Series | pd.DatetimeIndex, period: str, block_bars: int,
                min_block_bars: int = 2) -> list[np.ndarray] | None:
    """Row indices of each block of ``block_bars`` bars (shortened to give :data:`MIN_BLOCKS` blocks, never below
    ``min_block_bars``); ``None`` when the span is too short for that."""
    t = pd.DatetimeIndex(ts)
    span_bars = int((t.max() - t.min()) / period_delta(period)) + 1 if len(t) else 0
    block_bars = min(block_bars, span_bars // MIN_BLOCKS)
    if block_bars < max(min_block_bars, 1):
        logger.warning("span of %d bars is too short for %d bootstrap blocks of >= %d bars: no interval, "
                       "no verdict (lengthen the data or the evaluated span)", span_bars, MIN_BLOCKS, min_block_bars)
        return None
    block = ((t - t.min()) // (period_delta(period) * block_bars)).to_numpy()
    return [np.flatnonzero(block == i) for i in np.unique(block)]


def paired_block_bootstrap(metric: Callable[[np.ndarray, np.ndarray], float], y: np.ndarray, a: np.ndarray,
                           b: np.ndarray, ts: pd.Series | pd.DatetimeIndex, period: str, samples: int = 300,
                           block_bars: int = 48, seed: int = 0, min_block_bars: int = 2, sign: int = 1,
                           level: float = 0.90) -> tuple[float, float, float]:
    """``sign * (metric(y, a) - metric(y, b))`` and its bootstrap interval: (difference, low, high).

    ``sign`` is +1 when a higher metric is better, -1 when lower is (losses), so a positive difference always
    means A is better. Resamples where the metric is undefined (NaN: one class only) are skipped. The interval is
    NaN when the span holds too few blocks (:func:`time_blocks`).
    """
    full = sign * (metric(y, a) - metric(y, b))
    blocks = time_blocks(ts, period, block_bars, min_block_bars)
    if blocks is None:
        return float(full), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(samples):
        rows = np.concatenate([blocks[i] for i in rng.integers(0, len(blocks), len(blocks))])
        d = sign * (metric(y[rows], a[rows]) - metric(y[rows], b[rows]))
        if np.isfinite(d):
            diffs.append(d)
    if not diffs:
        return float(full), float("nan"), float("nan")
    tail = round((1.0 - level) / 2, 12)  # 0.05, not 0.04999..., for level 0.90
    lo, hi = np.quantile(diffs, [tail, 1.0 - tail])
    return float(full), float(lo), float(hi)
