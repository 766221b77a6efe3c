"""Time definitions shared by every stage: periods, target names, id and feature columns, and one split.

This module sits at the bottom of the import graph so that the build, the fusion, the window dataset,
walk-forward, the screening folds, the Z-Combiner and the audit all read the same rules:

* a **period** label (``1h``) and its length (:func:`period_delta`);
* a **target** name ``target_<kind>[_h<h>]`` and its horizon in bars (:func:`target_name`, :func:`horizon_of`);
* the **id columns** of the long panel and the rule for **feature columns** (:func:`feature_columns`);
* a row's **label end** (:func:`label_end`): a row stamped with its bar's open time ``t`` has a label built from
  the close of bar ``t + h``, known at ``t + (h + 1) x period``;
* one **embargo rule** (:func:`embargo_bars`): the configured number of bars, never less than the label horizon;
* one **split** (:class:`TimeSplit`): consecutive spans of decision times, each ended by a purge (its rows'
  labels are known before the next span begins) and each but the first started by the embargo.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from utils.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

#: Period label -> pandas frequency.
PERIODS = {"1m": "1min", "5m": "5min", "15m": "15min", "30m": "30min", "1h": "1h", "2h": "2h",
           "4h": "4h", "6h": "6h", "12h": "12h", "1d": "1D"}
#: Target kinds of the panel (see ``src.generate_targets_auto``).
TARGET_KINDS = ("logreturn", "binarytrend", "vol", "drawdown")
TARGET_PREFIX = "target_"
#: Columns that identify a row of the long panel; never model inputs.
ID_COLUMNS = ("symbol", "period", "timestamp", "time_idx", "gap_before")
#: One series of the panel, and one row of it.
SERIES_KEY = ("symbol", "period")
ROW_KEY = ("symbol", "period", "timestamp")


def check_periods(key: str, value: str | Sequence[str]) -> None:
    """Raise a ``ConfigError`` naming ``key`` when a config's period label (or list of them) is unknown."""
    bad = [p for p in ([value] if isinstance(value, str) else value) if p not in PERIODS]
    if bad:
        raise ConfigError(f"key {key!r} = {value!r}: unknown period(s) {bad}; valid periods: {list(PERIODS)}")


def period_delta(period: str) -> pd.Timedelta:
    """Length of a period label such as ``'1h'``, ``'4h'`` or ``'1d'``."""
    if period not in PERIODS:
        raise DataError(f"unknown period {period!r}; valid periods: {list(PERIODS)}")
    return pd.Timedelta(PERIODS[period])


def target_name(kind: str, horizon: int) -> str:
    """Column name of a target: ``target_<kind>`` for horizon 1, else ``target_<kind>_h<h>``."""
    if kind not in TARGET_KINDS:
        raise DataError(f"unknown target kind {kind!r}; valid kinds: {list(TARGET_KINDS)}")
    return f"{TARGET_PREFIX}{kind}" if horizon == 1 else f"{TARGET_PREFIX}{kind}_h{horizon}"


def horizon_of(target: str) -> int:
    """Bars of a target name, the inverse of :func:`target_name` (``_h4`` -> 4; bare -> 1)."""
    m = re.search(r"_h(\d+)$", target)
    return int(m.group(1)) if m else 1


def is_target(column: str) -> bool:
    """Whether ``column`` is a target (a future outcome, never an input)."""
    return column.startswith(TARGET_PREFIX)


def target_columns(frame: pd.DataFrame) -> list[str]:
    """The target columns of ``frame``, in column order."""
    return [c for c in frame.columns if is_target(c)]


def feature_columns(frame: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Candidate model inputs of ``frame``: numeric, not boolean, not an id, not a target, not in ``exclude``."""
    skip = set(ID_COLUMNS) | set(exclude)
    return [c for c in frame.columns if c not in skip and not is_target(c)
            and pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]


def label_end(ts: pd.Series | pd.DatetimeIndex, period: str, horizon: int) -> pd.DatetimeIndex:
    """When the label of rows stamped ``ts`` (bar open times) is known: the close of bar ``t + horizon``."""
    return pd.DatetimeIndex(ts) + period_delta(period) * (horizon + 1)


def embargo_bars(configured: int | None, horizon: int, source: str = "split") -> int:
    """The one embargo rule: ``configured`` bars (``None``: the horizon), never fewer than the label horizon."""
    if configured is None:
        return horizon
    if configured < horizon:
        logger.warning("%s: embargo_bars %d is shorter than the label horizon %d; using %d",
                       source, configured, horizon, horizon)
    return max(configured, horizon)


def time_at_share(ts: pd.Series | pd.DatetimeIndex, share: float) -> pd.Timestamp:
    """The distinct timestamp at ``share`` of the timeline (0 = first, values >= 1 give the last)."""
    uniq = np.sort(pd.DatetimeIndex(ts).unique())
    if uniq.size == 0:
        raise DataError("no timestamps to place a split boundary in")
    return pd.Timestamp(uniq[min(int(len(uniq) * share), len(uniq) - 1)])


def as_utc(value: str | pd.Timestamp) -> pd.Timestamp:
    """A date string or timestamp as a UTC timestamp (naive values are read as UTC)."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


@dataclass(frozen=True)
class TimeSplit:
    """Consecutive spans of decision times separated by a purge and an embargo.

    ``edges`` has one entry more than ``names``: span ``i`` holds rows stamped in
    ``[edges[i] (+ embargo when i > 0), edges[i + 1])``; ``None`` leaves the first start or the last end open.
    Every span but the last is purged: it keeps only rows whose label (:func:`label_end`) is known by the next
    edge, so no label overlaps a later span. The last span ends at its edge by decision time (nothing follows
    it on this timeline). ``embargo`` is in bars; use :func:`embargo_bars` to resolve a configured value.
    """

    edges: tuple[pd.Timestamp | None, ...]
    period: str
    horizon: int
    embargo: int
    names: tuple[str, ...] = ("fit", "eval")

    def __post_init__(self) -> None:
        if len(self.edges) != len(self.names) + 1:
            raise ValueError(f"{len(self.names)} span names need {len(self.names) + 1} edges, got {len(self.edges)}")
        if self.embargo < 0 or self.horizon < 0:
            raise ValueError("horizon and embargo must be >= 0")
        if any(e is None for e in self.edges[1:-1]):
            raise ValueError("only the first and the last edge may be open (None)")
        known = [e for e in self.edges if e is not None]
        if any(b <= a for a, b in zip(known, known[1:], strict=False)):
            raise DataError(f"split edges must increase: {[str(e) for e in self.edges]}")

    @classmethod
    def two_way(cls, boundary: pd.Timestamp, period: str, horizon: int, embargo: int,
                start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> TimeSplit:
        """A fit span before ``boundary`` and an evaluation span from ``boundary`` + embargo."""
        return cls((start, boundary, end), period, horizon, embargo, ("fit", "eval"))

    def masks(self, ts: pd.Series | pd.DatetimeIndex) -> dict[str, np.ndarray]:
        """Boolean row mask of each span for decision times ``ts``."""
        t = pd.DatetimeIndex(ts)
        step = period_delta(self.period)
        known = label_end(t, self.period, self.horizon)
        out = {}
        last = len(self.names) - 1
        for i, name in enumerate(self.names):
            lo, hi = self.edges[i], self.edges[i + 1]
            mask = np.ones(len(t), dtype=bool)
            if lo is not None:
                mask &= np.asarray(t >= lo + (step * self.embargo if i > 0 else pd.Timedelta(0)))
            if hi is not None:
                mask &= np.asarray(t < hi) if i == last else np.asarray(known <= hi)
            out[name] = mask
        return out

    def indices(self, ts: pd.Series | pd.DatetimeIndex) -> dict[str, np.ndarray]:
        """Row positions of each span."""
        return {name: np.flatnonzero(m) for name, m in self.masks(ts).items()}

    def describe(self) -> dict[str, object]:
        """Plain values for snapshots and reports."""
        return {"edges": [None if e is None else e.isoformat() for e in self.edges], "names": list(self.names),
                "period": self.period, "horizon_bars": self.horizon, "embargo_bars": self.embargo}


def expanding_splits(ts: pd.Series | pd.DatetimeIndex, n_folds: int, period: str, horizon: int,
                     embargo: int) -> list[TimeSplit]:
    """Expanding time folds: the distinct timestamps are cut into ``n_folds + 1`` equal blocks; fold ``j`` fits
    on everything before block ``j + 1`` (purged) and evaluates on that block (after the embargo)."""
    edges = [time_at_share(ts, j / (n_folds + 1)) for j in range(1, n_folds + 1)] + [None]
    # a timeline with fewer distinct stamps than blocks repeats edges: those empty blocks are no folds
    return [TimeSplit.two_way(edges[j], period, horizon, embargo, end=edges[j + 1]) for j in range(n_folds)
            if edges[j + 1] is None or edges[j + 1] > edges[j]]
