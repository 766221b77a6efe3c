"""Known-future covariates: the calendar (sin/cos of hour, weekday, month) of the decoder's future bars."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from models.leaf_config import Leaf
from models.scalers import BLOCK_ROWS
from utils.errors import DataError
from utils.timeline import period_delta

logger = logging.getLogger(__name__)


def calendar_features(ts_ns: np.ndarray, names: list[str]) -> np.ndarray:
    """Known-future calendar covariates (sin/cos of hour, weekday, month) for int64 ns timestamps."""
    idx = pd.DatetimeIndex(ts_ns.ravel(), tz="UTC")
    hour = idx.hour.to_numpy() + idx.minute.to_numpy() / 60.0
    base = {
        "hour": (hour, 24.0), "weekday": (idx.dayofweek.to_numpy(), 7.0), "month": (idx.month.to_numpy() - 1, 12.0),
    }
    cols = []
    for name in names:
        key, fn = name.rsplit("_", 1)
        if key not in base or fn not in ("sin", "cos"):
            raise DataError(f"unknown known-future covariate {name!r}; use hour/weekday/month _sin/_cos")
        value, period = base[key]
        cols.append((np.sin if fn == "sin" else np.cos)(2 * np.pi * value / period))
    return np.stack(cols, axis=-1).reshape(*ts_ns.shape, len(names)).astype(np.float32)


#: Length of each calendar covariate's cycle.
CALENDAR_CYCLES = {"hour": pd.Timedelta(days=1), "weekday": pd.Timedelta(days=7), "month": pd.Timedelta(days=365)}


def usable_known(names: list[str], train_span: pd.Timedelta, step: pd.Timedelta | None = None) -> list[str]:
    """The known-future calendar covariates whose cycle the training span covers at least twice.

    A month-of-year cosine over a few months of training data does not describe a season: it only says
    when a row was, a proxy for calendar time that a model latches on to and that cannot generalise.
    Bars of a day or longer (``step``) get no hour-of-day covariate: it is constant on them.
    """
    daily = step is not None and step >= pd.Timedelta(days=1)
    keep = [n for n in names if CALENDAR_CYCLES.get(n.rsplit("_", 1)[0], pd.Timedelta(0)) * 2 <= train_span
            and not (daily and n.startswith("hour_"))]
    if names and not keep:
        raise DataError(f"features.known_future = {names}: the training span ({train_span}) covers none of their "
                        f"cycles twice; list shorter cycles (hour_sin, weekday_sin, ...) or train on more data")
    if len(keep) < len(names):
        logger.info("known-future covariates %s left out: their cycle is longer than half the training span (%s)",
                    sorted(set(names) - set(keep)), train_span)
    return keep


def known_future(ts: pd.DatetimeIndex, train_rows: np.ndarray, leaf: Leaf, horizon: int,
                  names: list[str] | None) -> tuple[list[str], np.ndarray]:
    """Calendar covariates of decoder steps ``t+1 .. t+H``: the checkpoint's names, or those whose cycle the
    training span covers twice (:func:`usable_known`)."""
    step = period_delta(leaf.model.period)
    if names is None:
        span = ts[train_rows].max() - ts[train_rows].min()
        names = usable_known(list(leaf.model.features.known_future), span, step)
    ahead = step.value * np.arange(1, horizon + 1)[None, :]
    out = np.empty((len(ts), horizon, len(names)), dtype=np.float32)
    for start in range(0, len(ts), BLOCK_ROWS):  # block by block: the float64 temporaries stay small
        out[start:start + BLOCK_ROWS] = calendar_features(ts.asi8[start:start + BLOCK_ROWS, None] + ahead, names)
    return list(names), out
