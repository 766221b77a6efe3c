"""Forward-looking targets per horizon, and the per-period targeted+indicated files.

For a row ``t`` and horizon ``h`` (in bars of the row's period), with ``c`` the close:

* ``target_logreturn``   log(c[t+h] / c[t])
* ``target_binarytrend`` 1.0 if that log return is > 0 else 0.0
* ``target_vol``         sqrt(sum of squared 1-bar log returns over t+1..t+h) (realized vol ahead)
* ``target_drawdown``    min over k in 0..h of c[t+k] / max(c[t..t+k]) - 1 (max drawdown ahead, <= 0)

Horizon 1 keeps the bare names above; longer horizons get a ``_h<h>`` suffix
(``target_logreturn_h24``). A target is NaN when the horizon runs past the data or over a gap
(``gap_before`` or a ``time_idx`` jump), never a filled value.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from src.market_calendar import horizon_valid
from utils.errors import DataError
from utils.io import write_csv
from utils.timeline import target_name

logger = logging.getLogger(__name__)

DEFAULT_HORIZONS = (1, 4, 24)
TARGETED_DIR = Path("data/crypto_targeted_and_indicated")


def _drawdown_ahead(close: np.ndarray, h: int) -> np.ndarray:
    out = np.full(close.size, np.nan)
    if close.size <= h:
        return out
    win = sliding_window_view(close, h + 1)
    peak = np.maximum.accumulate(win, axis=1)
    out[: close.size - h] = (win / peak).min(axis=1) - 1.0
    return out


def make_targets(panel: pd.DataFrame, horizons: Sequence[int] = DEFAULT_HORIZONS) -> pd.DataFrame:
    """Target columns for a one-period panel sorted by ``symbol`` then ``timestamp``.

    Parameters
    ----------
    panel : DataFrame
        Needs ``symbol, close, time_idx, gap_before``.
    horizons : sequence of int
        Horizons in bars of the panel's period.

    Returns
    -------
    DataFrame
        Target columns only, aligned with ``panel``'s index.
    """
    missing = [c for c in ("symbol", "close", "time_idx", "gap_before") if c not in panel.columns]
    if missing:
        raise DataError(f"make_targets: panel lacks column(s) {missing}")
    if any(int(h) < 1 for h in horizons):
        raise DataError(f"make_targets: horizons must be >= 1, got {list(horizons)}")
    close = panel["close"].to_numpy(dtype=np.float64)
    codes = pd.factorize(panel["symbol"])[0]
    tidx = panel["time_idx"].to_numpy()
    gaps = panel["gap_before"].to_numpy(dtype=bool)
    logc = np.log(close)
    r1 = np.diff(logc, prepend=np.nan)
    cum_sq = np.concatenate([[0.0], np.cumsum(np.nan_to_num(r1) ** 2)])
    out = {}
    n = close.size
    for h in sorted(set(int(x) for x in horizons)):
        ok = horizon_valid(tidx, gaps, codes, h)
        fwd = np.full(n, np.nan)
        if n > h:  # a series no longer than the horizon has no label at all
            fwd[: n - h] = logc[h:] - logc[: n - h]
        ret = np.where(ok, fwd, np.nan)
        vol = np.full(n, np.nan)
        vol[: max(n - h, 0)] = np.sqrt(cum_sq[h + 1 :] - cum_sq[1 : n - h + 1]) if n > h else vol[:0]
        out[target_name("logreturn", h)] = ret
        out[target_name("binarytrend", h)] = np.where(ok, (fwd > 0).astype(np.float64), np.nan)
        out[target_name("vol", h)] = np.where(ok, vol, np.nan)
        out[target_name("drawdown", h)] = np.where(ok, _drawdown_ahead(close, h), np.nan)
    return pd.DataFrame(out, index=panel.index)


def convert_selected_periods_to_csv(periods: Iterable[str], panels: dict[str, pd.DataFrame],
                                    out_dir: str | Path = TARGETED_DIR,
                                    horizons: Sequence[int] = DEFAULT_HORIZONS) -> dict[str, pd.DataFrame]:
    """Add targets to each period's indicated panel and write one CSV per symbol.

    Files: ``<out_dir>/<tf>/<SYMBOL>_<tf>.csv``. Existing files for other symbols are left alone;
    each file is replaced atomically.

    Parameters
    ----------
    periods : iterable of str
        Periods to convert (each must be a key of ``panels``).
    panels : dict of str to DataFrame
        Indicated panels with ``time_idx`` and ``gap_before`` (see ``src.market_calendar``).
    out_dir : path-like
        Root folder of the per-period outputs.
    horizons : sequence of int
        Target horizons in bars.

    Returns
    -------
    dict of str to DataFrame
        The targeted panels, by period.
    """
    result = {}
    for tf in periods:
        if tf not in panels:
            raise DataError(f"period {tf!r} has no indicated panel; available: {sorted(panels)}")
        panel = panels[tf]
        targeted = pd.concat([panel, make_targets(panel, horizons)], axis=1)
        for symbol, part in targeted.groupby("symbol", sort=True):
            write_csv(part, Path(out_dir) / tf / f"{symbol}_{tf}.csv")
        logger.debug("%s: targets for horizons %s written to %s", tf, list(horizons), Path(out_dir) / tf)
        result[tf] = targeted
    return result
