"""Point-in-time fusion of fundamentals into the merged panel: inputs, the fused columns, the row policies.

No file is written here; :mod:`src.fuse_fundamentals` drives the datasets and writes their outputs.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from src import fundamentals as fu
from src.bars import infer_period
from src.fuse_config import DatasetConfig, MaxStalenessHours, PublicationLagHours
from src.market_data import (
    RawInventory,
    discover_raw,
    load_daily_series,
    load_funding,
    load_klines,
    load_metrics,
)
from src.merging import read_manifest
from utils.errors import DataError
from utils.partitioned import is_partitioned, read_meta, read_partitioned
from utils.timeline import ROW_KEY, SERIES_KEY, period_delta

logger = logging.getLogger(__name__)

KEYS = list(SERIES_KEY)


# --------------------------------------------------------------------------- inputs


def _check_base(frame: pd.DataFrame, where: str | Path) -> pd.DataFrame:
    missing = [c for c in ("symbol", "period", "timestamp", "close") if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: base panel lacks column(s) {missing}")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    dup = frame.duplicated(list(ROW_KEY))
    if dup.any():
        first = frame.loc[dup].iloc[0]
        raise DataError(f"{where}: {int(dup.sum())} duplicated (symbol, period, timestamp) rows, first "
                        f"{first['symbol']} {first['period']} {first['timestamp']}; rebuild the panel")
    return frame


def _partitioned_base(base_csv: Path) -> Path | None:
    """The build's partitioned panel beside ``base_csv`` when the build manifest names one."""
    manifest = read_manifest(base_csv) or {}
    root = base_csv.with_suffix("")
    return root if manifest.get("dataset") and is_partitioned(root) else None


def read_base_panel(base_csv: str | Path) -> pd.DataFrame:
    """The whole merged panel: the build's partitioned dataset when its manifest names one, else the parquet twin
    when at least as new as the CSV (much faster), else the CSV."""
    path = Path(base_csv)
    twin = path.with_suffix(".parquet")
    root = _partitioned_base(path)
    if root is not None:
        frame = read_partitioned(root)
    elif twin.is_file() and (not path.is_file() or twin.stat().st_mtime >= path.stat().st_mtime):
        frame = pd.read_parquet(twin)
    elif path.is_file():
        frame = pd.read_csv(path)
    else:
        raise DataError(f"base panel not found: {path}; build it with `python src/build_full_merged.py`")
    return _check_base(frame, path)


class BasePanel:
    """The merged panel, one (period, symbol) series at a time.

    Reads the build's partitioned dataset partition by partition (memory: one series); a panel from an older
    build (single CSV / parquet file) is read whole once and served by series.
    """

    def __init__(self, base_csv: str | Path) -> None:
        self.path = Path(base_csv)
        self.root = _partitioned_base(self.path)
        self._frame: pd.DataFrame | None = None
        self._series: dict[tuple, pd.DataFrame | pa.Table] = {}
        if self.root is not None:
            self.parts = [tuple(p) for p in read_meta(self.root)["partitions"]]
        else:
            self._frame = read_base_panel(self.path)
            keys = self._frame[["period", "symbol"]].drop_duplicates()
            self.parts = list(keys.itertuples(index=False, name=None))
            self._rows = self._frame.groupby(["period", "symbol"], sort=False).indices

    @property
    def periods(self) -> list[str]:
        """Periods of the panel, in panel order."""
        return list(dict.fromkeys(p for p, _ in self.parts))

    def partitions(self, periods: list[str] | None = None) -> list[tuple[str, str]]:
        """``(period, symbol)`` pairs, symbol by symbol (periods in panel order within a symbol)."""
        chosen = [p for p in self.parts if periods is None or p[0] in periods]
        order = {p: i for i, p in enumerate(self.periods)}
        return sorted(chosen, key=lambda p: (p[1], order[p[0]]))

    def read(self, period: str, symbol: str) -> pd.DataFrame:
        """One series, checked (required columns, no duplicated timestamps); kept until :meth:`forget`, so the
        datasets of a run that take the same symbol in turn read it once."""
        if self._frame is not None:
            return self._frame.iloc[self._rows[(period, symbol)]].reset_index(drop=True)
        key = (period, symbol)
        if key not in self._series:
            self._series[key] = _check_base(read_partitioned(self.root, periods=[period], symbols=[symbol]),
                                            self.path)
        return self._series[key].copy()

    def arrow(self, period: str, symbol: str) -> pa.Table:
        """One series as an Arrow table without ``symbol`` / ``period`` (converted once for every dataset)."""
        key = ("arrow", period, symbol)
        if key not in self._series:
            frame = self.read(period, symbol)
            self._series[key] = pa.Table.from_pandas(frame.drop(columns=["symbol", "period"]), preserve_index=False)
        return self._series[key]

    def forget(self, symbol: str) -> None:
        """Drop ``symbol``'s series read so far."""
        for key in [k for k in self._series if k[-1] == symbol]:
            del self._series[key]


@dataclass
class FusionInputs:
    """Base panel and raw sources, read once per run and shared by every dataset."""

    base: BasePanel
    inventory: RawInventory
    base_path: Path
    _cache: dict = field(default_factory=dict)

    def evict(self, symbol: str) -> None:
        """Forget ``symbol``'s parsed sources and series (a run that goes symbol by symbol is done with it)."""
        self.base.forget(symbol)
        for key in [k for k in self._cache if len(k) == 3 and k[1] == symbol]:
            del self._cache[key]

    def _cached(self, key: tuple, build) -> fu.AlignedSource:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def symbol_source(self, kind: str, symbol: str, lag: pd.Timedelta, group: str) -> fu.AlignedSource:
        """Aligned ``funding``, ``metrics`` or ``premium`` source of ``symbol``."""
        files = getattr(self.inventory, kind).get(symbol)
        folder = {"funding": "fundingRate", "metrics": "metrics", "premium": "premiumIndexKlines"}[kind]
        if not files:
            raise DataError(f"include_symbol.{group} needs {folder} files for {symbol}, but none were found under "
                            f"{self.inventory.root} (expected .../{folder}/{symbol}/...); add them or disable "
                            f"include_symbol.{group}")

        def build() -> fu.AlignedSource:
            if kind == "funding":
                return fu.funding_source(load_funding(files), lag)
            if kind == "metrics":
                return fu.metrics_source(load_metrics(files), lag)
            bars = self.premium_closes(symbol)
            return fu.premium_source(bars, period_delta(infer_period(bars["timestamp"])), lag)

        return self._cached((kind, symbol, lag.value), build)

    def premium_closes(self, symbol: str) -> pd.DataFrame:
        """``timestamp, close`` of ``symbol``'s premium-index klines, parsed once for the symbol's own source
        and the cross-sectional (global) premium alike."""
        def build() -> pd.DataFrame:
            bars = load_klines(self.inventory.premium[symbol], symbol, positive_prices=False)
            return bars[["timestamp", "close"]]

        return self._cached(("premium_close", symbol, 0), build)

    def global_source(self, group: str, lag: pd.Timedelta, stems: dict[str, str]) -> fu.AlignedSource:
        """Aligned global source for an ``include_global`` key."""
        if group == "premium":
            def build() -> fu.AlignedSource:
                premiums = {s: self.premium_closes(s) for s in self.inventory.premium}
                frame = fu.global_premium_frame(premiums)
                step = period_delta(infer_period(frame["timestamp"]))
                return fu.premium_source(frame, step, lag, prefix="premium_premium_index")
            return self._cached(("global_premium", lag.value), build)
        stem = stems.get(group, "")
        path = self.inventory.global_files.get(stem)
        if path is None:
            raise DataError(f"include_global.{group} needs the daily file global/{stem}.csv under "
                            f"{self.inventory.root}; add it, point global_files.{group} at another file, "
                            f"or disable include_global.{group}")
        return self._cached((group, lag.value), lambda: fu.daily_source(load_daily_series(path), group, lag))


_FOLDERS = {"funding": "fundingRate", "metrics": "metrics", "premium": "premiumIndexKlines"}


def _names(symbols: list[str]) -> str:
    return ", ".join(symbols[:8]) + (f" and {len(symbols) - 8} more" if len(symbols) > 8 else "")


def missing_sources(symbols: list[str], ds: DatasetConfig, inputs: FusionInputs,
                    stems: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The enabled source groups whose raw files are missing, all of them at once.

    Returns
    -------
    dict
        ``{'symbol.funding': {'symbols': [...lacking...], 'why': 'no fundingRate files for AAPL'}, ...}``;
        global groups list ``symbols = ['*']``.
    """
    sym_groups, glob_groups = ds.groups()
    out: dict[str, dict[str, Any]] = {}
    for group in sym_groups:
        lacking = sorted({s for kind in fu.GROUP_SOURCES[group] for s in symbols
                          if not getattr(inputs.inventory, kind).get(s)})
        if lacking:
            kinds = sorted({_FOLDERS[k] for k in fu.GROUP_SOURCES[group]})
            out[f"symbol.{group}"] = {"symbols": lacking, "why": f"no {'/'.join(kinds)} files for {_names(lacking)}"}
    for group in glob_groups:
        if group == "premium":
            if not inputs.inventory.premium:
                out["global.premium"] = {"symbols": ["*"], "why": "no premiumIndexKlines files"}
        elif stems.get(group, "") not in inputs.inventory.global_files:
            out[f"global.{group}"] = {"symbols": ["*"], "why": f"no global/{stems.get(group, '')}.csv"}
    return out


def apply_missing_mode(ds: DatasetConfig, missing: dict[str, dict[str, Any]], mode: str, root: Path,
                   symbols: list[str]) -> tuple[DatasetConfig, dict[str, list[str]]]:
    """``error``: one DataError listing every missing source. ``skip``: the dataset without them (a symbol
    group stays for the symbols that have its files) and, per symbol, what was skipped."""
    if not missing:
        return ds, {}
    listed = "; ".join(f"{g}: {m['why']}" for g, m in missing.items())
    if mode == "error":
        raise DataError(f"dataset {ds.extra_field}: source(s) without raw files under {root}: {listed}. Add the "
                        f"files, disable these include_* keys in the dataset file, or pass --missing-sources skip "
                        f"(missing_sources: skip) to leave them out (markets without fundamentals: stocks, FX)")
    logger.warning("dataset %s: left out source(s) without raw files under %s (missing_sources: skip): %s",
                   ds.extra_field, root, listed)
    whole = {g for g, m in missing.items() if g.startswith("global.") or set(m["symbols"]) >= set(symbols)}
    ds = dataclasses.replace(
        ds, include_symbol={k: v and f"symbol.{k}" not in whole for k, v in ds.include_symbol.items()},
        include_global={k: v and f"global.{k}" not in whole for k, v in ds.include_global.items()})
    skipped = {s: [g for g, m in missing.items() if s in m["symbols"] or m["symbols"] == ["*"]] for s in symbols}
    return ds, skipped


def load_inputs(base_csv: str | Path, raw_dir: str | Path) -> FusionInputs:
    """Read the base panel and index the raw folder."""
    return FusionInputs(base=BasePanel(base_csv), inventory=discover_raw(raw_dir), base_path=Path(base_csv))


# --------------------------------------------------------------------------- fusion


def _hours(h: float) -> pd.Timedelta:
    return pd.Timedelta(hours=h)


def _decision_ns(frame: pd.DataFrame) -> np.ndarray:
    """Bar close (open time + period) of every row, in ns."""
    deltas = {p: period_delta(p).value for p in frame["period"].unique()}
    step = frame["period"].map(deltas).to_numpy(dtype=np.int64)
    return pd.DatetimeIndex(frame["timestamp"]).as_unit("ns").asi8 + step


@dataclass
class _Fused:
    columns: dict[str, np.ndarray]
    groups: dict[str, list[str]]
    stale: np.ndarray  # stale cells per row
    audit: list[dict]


def _symbol_groups(base: pd.DataFrame, decision: np.ndarray, ds: DatasetConfig, inputs: FusionInputs,
                   lags: PublicationLagHours, stale: MaxStalenessHours, out: _Fused,
                   skipped: dict[str, list[str]] | None = None) -> None:
    all_groups, _ = ds.groups()
    if not all_groups:
        return
    for symbol, rows in base.groupby("symbol", sort=True).indices.items():
        joined: dict[str, pd.DataFrame] = {}
        symbol_groups = [g for g in all_groups if f"symbol.{g}" not in (skipped or {}).get(symbol, [])]
        if not symbol_groups:
            continue
        for group in symbol_groups:
            for kind in fu.GROUP_SOURCES[group]:
                if kind in joined:
                    continue
                src = inputs.symbol_source(kind, symbol, _hours(getattr(lags, kind)), group)
                joined[kind], stale_rows = fu.asof_join(decision[rows], src, _hours(getattr(stale, kind)))
                out.stale[rows] += stale_rows
                out.audit.append({"source": kind, "symbol": symbol, "period": "*", **src.audit,
                                  "stale_rows": int(stale_rows.sum())})
        flat = pd.concat(joined.values(), axis=1)
        for group in symbol_groups:
            if group in fu.SOURCE_GROUP_COLUMNS:
                block = flat[fu.SOURCE_GROUP_COLUMNS[group]]
            else:
                block = fu.funding_cross(flat, group, base.iloc[rows])
            out.groups.setdefault(f"symbol.{group}", list(block.columns))
            for col in block.columns:
                out.columns.setdefault(col, np.full(len(base), np.nan))[rows] = block[col].to_numpy()


def _global_groups(decision: np.ndarray, ds: DatasetConfig, inputs: FusionInputs, lags: PublicationLagHours,
                   stale: MaxStalenessHours, stems: dict[str, str], out: _Fused) -> None:
    _, global_groups = ds.groups()
    for group in global_groups:
        src = inputs.global_source(group, _hours(getattr(lags, group)), stems)
        joined, stale_rows = fu.asof_join(decision, src, _hours(getattr(stale, group)))
        out.stale += stale_rows
        out.audit.append({"source": f"global.{group}", "symbol": "*", "period": "*", **src.audit,
                          "stale_rows": int(stale_rows.sum())})
        out.groups[f"global.{group}"] = list(joined.columns)
        for col in joined.columns:
            out.columns[col] = joined[col].to_numpy()


def compute_fused(base: pd.DataFrame, ds: DatasetConfig, inputs: FusionInputs, lags: PublicationLagHours,
                  stale: MaxStalenessHours, stems: dict[str, str],
                  skipped: dict[str, list[str]] | None = None) -> _Fused:
    """Fused columns (aligned with ``base``'s rows), their groups, staleness counts and source audits.

    ``skipped`` maps a symbol to the source groups left out for it (``missing_sources: skip``).
    """
    out = _Fused(columns={}, groups={}, stale=np.zeros(len(base), dtype=np.int64), audit=[])
    decision = _decision_ns(base)
    _symbol_groups(base, decision, ds, inputs, lags, stale, out, skipped)
    _global_groups(decision, ds, inputs, lags, stale, stems, out)
    clash = [c for c in out.columns if c in base.columns]
    if clash:
        raise DataError(f"fused column(s) {clash} already exist in the base panel {inputs.base_path}")
    return out


# --------------------------------------------------------------------------- policies


def _span_mask(complete: pd.Series, keys: list[pd.Series]) -> np.ndarray:
    """Rows between the first and last complete row of their group (inclusive)."""
    seen_before = complete.astype(np.int8).groupby(keys).cummax().astype(bool)
    rev = complete.iloc[::-1]
    seen_after = rev.astype(np.int8).groupby([k.iloc[::-1] for k in keys]).cummax().astype(bool).iloc[::-1]
    return (seen_before & seen_after).to_numpy()


def apply_intersect(table: pd.DataFrame, columns: list[str],
                    dead: list[str] | None = None) -> tuple[pd.DataFrame, dict, list[str]]:
    """Keep, per (symbol, period), the span where every intersect column is present.

    Intersect columns that are entirely null within a group are ignored for that group (and
    counted); columns null in every group are dropped from the table and returned. ``dead`` gives those
    columns when ``table`` is one part of a larger panel (a fusion that goes series by series).
    """
    keys = [table["symbol"], table["period"]]
    present = table[columns].notna()
    group_any = present.groupby(keys).any()
    if dead is None:
        dead = [c for c in columns if not group_any[c].any()]
    live = [c for c in columns if c not in dead]
    all_null_count = (~group_any[live]).sum(axis=1) if live else group_any.iloc[:, :0].sum(axis=1)
    if live:
        ignore = (~group_any[live]).reindex(pd.MultiIndex.from_arrays(keys)).to_numpy()
        complete = pd.Series((present[live].to_numpy() | ignore).all(axis=1), index=table.index)
        keep = _span_mask(complete, keys)
    else:
        keep = np.zeros(len(table), dtype=bool)
    trimmed = pd.Series(~keep).groupby([k.to_numpy() for k in keys]).sum()
    stats = {k: {"intersect_trimmed_rows": int(trimmed.get(k, 0)),
                 "intersect_all_null_cols_count": int(all_null_count.get(k, 0)) + len(dead)}
             for k in group_any.index}
    return table.loc[keep].drop(columns=dead), stats, dead


def apply_missing_threshold(table: pd.DataFrame, fused: list[str],
                            ratio: float) -> tuple[pd.DataFrame, dict, pd.Series]:
    """Drop rows whose missing ratio over the fused columns exceeds ``ratio``.

    Returns the kept rows, per-group stats (dropped rows and how many fused columns had a gap
    in them) and, per fused column, how many dropped rows lacked it.
    """
    missing = table[fused].isna()
    drop = (missing.mean(axis=1) > ratio).to_numpy() if fused else np.zeros(len(table), dtype=bool)
    keys = [table["symbol"].to_numpy(), table["period"].to_numpy()]
    dropped = missing.loc[drop]
    by_group = dropped.groupby([k[drop] for k in keys])
    rows = by_group.size()
    cols = by_group.any().sum(axis=1)
    stats = {k: {"missing_threshold_rows": int(rows.get(k, 0)), "missing_threshold_cols_count": int(cols.get(k, 0))}
             for k in rows.index}
    return table.loc[~drop], stats, dropped.sum()
