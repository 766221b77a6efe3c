"""Point-in-time fusion of funding, open interest, premium and on-chain data into expert datasets.

Usage::

    python -m src.fuse_fundamentals --config pipelines/configs/fuse_fundamentals.yaml [--experts A,B]
    python -c "from src.fuse_fundamentals import run_with_config; \\
               run_with_config('pipelines/configs/fuse_fundamentals.yaml')"

Each dataset ``<Expert>_<base|rich>`` is written to ``data/merged/expert_group/<name>/``:
``full_merged_with_fundamentals.{csv,pkl,parquet}``, ``full_merged_slim.csv``,
``fundamental_columns.txt``, ``dataset_group_summary.csv``, ``missing_threshold_columns.txt``,
``intersect_columns.txt``, ``intersect_columns_all_null.txt``, ``fuse_audit/`` and
``config_snapshot.yaml``; ``reports/datasets/experts_group_summary.csv`` summarizes all datasets.
A dataset folder is replaced as a whole only after everything in it was written, so a failed run
leaves earlier outputs intact.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from tqdm.auto import tqdm

from src import fundamentals as fu
from src.fuse_config import (
    DatasetConfig,
    FuseConfig,
    MaxStalenessHours,
    NoNanPolicy,
    PostConvert,
    PublicationLagHours,
)
from src.market_data import (
    OHLCV,
    RawInventory,
    discover_raw,
    infer_period,
    load_daily_series,
    load_funding,
    load_klines,
    load_metrics,
)
from src.merging import read_manifest
from utils.cli import guarded
from utils.config import from_mapping, load_config
from utils.errors import ConfigError, DataError
from utils.io import atomic_dir, remove_stale, write_csv
from utils.locks import output_lock
from utils.paths import rebase
from utils.timeline import ID_COLUMNS, ROW_KEY, SERIES_KEY, period_delta, target_columns

logger = logging.getLogger(__name__)

KEYS = list(SERIES_KEY)
CORE_COLUMNS = [*ID_COLUMNS, *OHLCV]
FULL_NAME = "full_merged_with_fundamentals.csv"


# --------------------------------------------------------------------------- inputs


def read_base_panel(base_csv: str | Path) -> pd.DataFrame:
    """The merged panel; its parquet twin is read instead when it is at least as new (much faster)."""
    path = Path(base_csv)
    twin = path.with_suffix(".parquet")
    if twin.is_file() and (not path.is_file() or twin.stat().st_mtime >= path.stat().st_mtime):
        frame = pd.read_parquet(twin)
    elif path.is_file():
        frame = pd.read_csv(path)
    else:
        raise DataError(f"base panel not found: {path}; build it with `python src/build_full_merged.py`")
    missing = [c for c in ("symbol", "period", "timestamp", "close") if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: base panel lacks column(s) {missing}")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    dup = frame.duplicated(list(ROW_KEY))
    if dup.any():
        first = frame.loc[dup].iloc[0]
        raise DataError(f"{path}: {int(dup.sum())} duplicated (symbol, period, timestamp) rows, first "
                        f"{first['symbol']} {first['period']} {first['timestamp']}; rebuild the panel")
    return frame


@dataclass
class FusionInputs:
    """Base panel and raw sources, read once per run and shared by every dataset."""

    base: pd.DataFrame
    inventory: RawInventory
    base_path: Path
    _cache: dict = field(default_factory=dict)

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
            bars = load_klines(files, symbol, positive_prices=False)
            return fu.premium_source(bars, period_delta(infer_period(bars["timestamp"])), lag)

        return self._cached((kind, symbol, lag.value), build)

    def global_source(self, group: str, lag: pd.Timedelta, stems: dict[str, str]) -> fu.AlignedSource:
        """Aligned global source for an ``include_global`` key."""
        if group == "premium":
            def build() -> fu.AlignedSource:
                premiums = {s: load_klines(f, s, positive_prices=False) for s, f in self.inventory.premium.items()}
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


def _apply_missing(ds: DatasetConfig, missing: dict[str, dict[str, Any]], mode: str, root: Path,
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
    return FusionInputs(base=read_base_panel(base_csv), inventory=discover_raw(raw_dir), base_path=Path(base_csv))


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


def apply_intersect(table: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, dict, list[str]]:
    """Keep, per (symbol, period), the span where every intersect column is present.

    Intersect columns that are entirely null within a group are ignored for that group (and
    counted); columns null in every group are dropped from the table and returned.
    """
    keys = [table["symbol"], table["period"]]
    present = table[columns].notna()
    group_any = present.groupby(keys).any()
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


# --------------------------------------------------------------------------- outputs


@dataclass
class FuseResult:
    """What one dataset fusion produced."""

    name: str
    out_dir: Path
    table: pd.DataFrame
    fundamental_columns: list[str]
    summary: pd.DataFrame
    seconds: float = 0.0

    def report_row(self) -> dict[str, Any]:
        """One row of ``experts_group_summary.csv``."""
        s = self.summary
        return {
            "dataset": self.name, "rows": len(self.table), "columns": self.table.shape[1],
            "fundamental_columns": len(self.fundamental_columns), "symbols": self.table["symbol"].nunique(),
            "periods": ",".join(sorted(self.table["period"].unique())) if len(self.table) else "",
            "first_timestamp": s["first_timestamp"].min() if len(s) else "",
            "last_timestamp": s["last_timestamp"].max() if len(s) else "",
            "missing_threshold_rows": int(s["missing_threshold_rows"].sum()),
            "intersect_trimmed_rows": int(s["intersect_trimmed_rows"].sum()),
            "stale_values": int(s["stale_values"].sum()), "output_dir": str(self.out_dir),
            "skipped_sources": ";".join(sorted({g for v in s.get("skipped_sources", pd.Series(dtype=str))
                                                for g in str(v).split(";") if g})),
        }


def group_summary(before: pd.DataFrame, after: pd.DataFrame, stale: pd.Series, *stats: dict) -> pd.DataFrame:
    """``dataset_group_summary.csv``: one row per (symbol, period) of the base panel."""
    groups = before.groupby(KEYS, sort=True).size().rename("rows_before").to_frame()
    kept = after.groupby(KEYS, sort=True)["timestamp"].agg(["size", "min", "max"])
    out = groups.join(kept.rename(columns={"size": "rows", "min": "first_timestamp", "max": "last_timestamp"}))
    out["rows"] = out["rows"].fillna(0).astype(np.int64)
    for name in ("missing_threshold_rows", "missing_threshold_cols_count", "intersect_trimmed_rows",
                 "intersect_all_null_cols_count"):
        out[name] = [int(next((s[k][name] for s in stats if k in s and name in s[k]), 0)) for k in out.index]
    out["stale_values"] = stale.groupby([before["symbol"], before["period"]]).sum().reindex(out.index).fillna(0)
    out["stale_values"] = out["stale_values"].astype(np.int64)
    return out.reset_index()


def _audits(table: pd.DataFrame, fused: list[str], source_audit: list[dict]) -> dict[str, pd.DataFrame]:
    cover = table[fused].notna().groupby(table["period"]).mean().T if fused else pd.DataFrame()
    if fused:
        cover["all"] = table[fused].notna().mean()
    values = table[fused]
    stats = pd.DataFrame({
        "count": values.count(), "null_fraction": values.isna().mean(), "mean": values.mean(),
        "std": values.std(), "min": values.min(), "max": values.max(),
    }) if fused else pd.DataFrame()
    panel = []
    for (sym, per), g in table.groupby(KEYS, sort=True):
        a = fu.time_audit(g["timestamp"])
        panel.append({"source": "panel", "symbol": sym, "period": per, **a,
                      "gaps": int(g["gap_before"].sum()) if "gap_before" in g else a["gaps"], "stale_rows": 0})
    return {
        "coverage.csv": cover.rename_axis("column").reset_index(),
        "column_stats.csv": stats.rename_axis("column").reset_index(),
        "time_audit.csv": pd.DataFrame(source_audit + panel),
    }


def _write_dataset(out_dir: Path, table: pd.DataFrame, fused: list[str], summary: pd.DataFrame,
                   lists: dict[str, list[str]], audits: dict[str, pd.DataFrame], snapshot: dict,
                   post: PostConvert) -> None:
    """Write every output into a staging folder, then swap it in as a whole."""
    slim_cols = [c for c in CORE_COLUMNS if c in table.columns] + fused + \
        target_columns(table)
    for path in remove_stale(out_dir.parent):
        logger.info("removed the leftover %s of an earlier, interrupted run", path)
    with atomic_dir(out_dir) as tmp:
        (tmp / "fuse_audit").mkdir()
        jobs = [lambda: write_csv(table[slim_cols], tmp / "full_merged_slim.csv")]
        if post.csv:
            jobs.append(lambda: write_csv(table, tmp / FULL_NAME))
        if post.parquet:
            jobs.append(lambda: table.to_parquet(tmp / "full_merged_with_fundamentals.parquet", index=False))
        if post.pkl:
            jobs.append(lambda: table.to_pickle(tmp / "full_merged_with_fundamentals.pkl"))
        # Arrow releases the GIL while formatting, so the big writes overlap on both cores.
        with ThreadPoolExecutor(max_workers=2) as pool:
            for fut in [pool.submit(job) for job in jobs]:
                fut.result()
        for name, items in lists.items():
            (tmp / name).write_text("".join(f"{x}\n" for x in items), encoding="utf-8")
        summary.to_csv(tmp / "dataset_group_summary.csv", index=False)
        for name, frame in audits.items():
            frame.to_csv(tmp / "fuse_audit" / name, index=False)
        (tmp / "config_snapshot.yaml").write_text(yaml.safe_dump(snapshot, sort_keys=False), encoding="utf-8")


def _check_output(table: pd.DataFrame, name: str, fused: list[str]) -> None:
    if table.empty:
        raise DataError(f"dataset {name}: no rows left after the missing-ratio / intersect policies; relax "
                        f"max_missing_ratio or the no_nan_policy columns (see dataset_group_summary.csv of a "
                        f"looser run)")
    if table.duplicated(list(ROW_KEY)).any():
        raise DataError(f"dataset {name}: duplicated (symbol, period, timestamp) rows after fusion")
    order = table.groupby(KEYS, sort=False)["timestamp"].diff().dropna()
    if (order <= pd.Timedelta(0)).any():
        raise DataError(f"dataset {name}: timestamps are not strictly increasing within (symbol, period)")
    if fused and np.isinf(table[fused].to_numpy(dtype=np.float64)).any():
        raise DataError(f"dataset {name}: infinite values in fused columns")


def _as(cls, value, source: str):
    if value is None or isinstance(value, cls):
        return value if value is not None else cls()
    return from_mapping(cls, value, source=source)


def fuse(base_csv: str | Path, out_csv: str | Path, include_symbol: dict[str, bool] | None = None,
         include_global: dict[str, bool] | None = None, max_missing_ratio: float | None = None,
         no_nan_policy: dict | NoNanPolicy | None = None, validate: bool = True, *,
         raw_dir: str | Path = "data/raw", dataset_type: str = "combined", periods: Iterable[str] | None = None,
         post_convert: dict | PostConvert | None = None, publication_lag_hours: dict | None = None,
         max_staleness_hours: dict | None = None, global_files: dict[str, str] | None = None,
         inputs: FusionInputs | None = None, snapshot: dict | None = None,
         missing_sources_mode: str = "error") -> FuseResult:
    """Fuse fundamentals into the merged panel and write one expert dataset.

    Parameters
    ----------
    base_csv : path-like
        Merged panel (``data/merged/full_merged.csv``; its parquet twin is used when current).
    out_csv : path-like
        ``.../<Expert>_<base|rich>/full_merged_with_fundamentals.csv``; its folder receives every output.
    include_symbol, include_global : dict of str to bool
        Source groups to add (see :mod:`src.fundamentals`); unknown keys are a ``ConfigError``.
    max_missing_ratio : float or None
        Drop rows whose missing ratio over the fused columns exceeds this; ``None`` disables.
    no_nan_policy : dict or NoNanPolicy
        ``{enabled, scope: onchain|custom, method: intersect, columns}``.
    validate : bool
        Check the result (non-empty, unique sorted keys, finite fused values) before writing.
    raw_dir, dataset_type, periods, post_convert, publication_lag_hours, max_staleness_hours, global_files
        As in ``pipelines/configs/fuse_fundamentals.yaml``.
    inputs : FusionInputs, optional
        Already-loaded panel and sources (shared across datasets by :func:`run_with_config`).
    snapshot : dict, optional
        Resolved configuration to store as ``config_snapshot.yaml``.
    missing_sources_mode : {'error', 'skip'}
        A source group without raw files for the panel's symbols: one ``DataError`` listing all of them, or
        leave them out with one warning (recorded in ``dataset_group_summary.csv`` and the audit).

    Returns
    -------
    FuseResult
    """
    started = time.perf_counter()
    out_dir = Path(out_csv).parent
    source = "fuse() arguments"
    ds = from_mapping(DatasetConfig, {
        "dataset_type": dataset_type, "extra_field": out_dir.name, "include_symbol": include_symbol or {},
        "include_global": include_global or {}, "max_missing_ratio": max_missing_ratio,
        "no_nan_policy": dataclasses.asdict(no_nan_policy) if isinstance(no_nan_policy, NoNanPolicy)
        else (no_nan_policy or {}),
    }, source=source)
    post = _as(PostConvert, post_convert, source)
    lags = _as(PublicationLagHours, publication_lag_hours, source)
    stale = _as(MaxStalenessHours, max_staleness_hours, source)
    stems = global_files or FuseConfig().global_files
    inputs = inputs or load_inputs(base_csv, raw_dir)
    base = inputs.base
    if periods:
        unknown = sorted(set(periods) - set(base["period"].unique()))
        if unknown:
            raise ConfigError(f"{source}: key 'periods' = {list(periods)}: {unknown} not in the base panel")
        base = base[base["period"].isin(list(periods))].reset_index(drop=True)
    if missing_sources_mode not in ("error", "skip"):
        raise ConfigError(f"{source}: missing_sources = {missing_sources_mode!r}: use 'error' or 'skip'")
    symbols = sorted(base["symbol"].unique())
    ds, skipped = _apply_missing(ds, missing_sources(symbols, ds, inputs, stems), missing_sources_mode,
                                 inputs.inventory.root, symbols)
    result = compute_fused(base, ds, inputs, lags, stale, stems, skipped)
    result.audit += [{"source": g, "symbol": sym, "period": "*", "status": "skipped: no raw files"}
                     for sym, groups in skipped.items() for g in groups]
    fused_cols = list(result.columns)
    targets = target_columns(base)
    table = pd.concat([base.drop(columns=targets), pd.DataFrame(result.columns, index=base.index),
                       base[targets]], axis=1)
    stale_per_row = pd.Series(result.stale, index=base.index)

    intersect_cols, dead, inter_stats = [], [], {}
    pol = ds.no_nan_policy
    if pol.enabled and pol.scope == "onchain" and any("global.onchain" in g for g in skipped.values()):
        logger.warning("dataset %s: no_nan_policy (scope onchain) not applied: the on-chain source was left out",
                       ds.extra_field)
    elif pol.enabled:
        intersect_cols = result.groups.get("global.onchain", []) if pol.scope == "onchain" else pol.columns
        unknown = [c for c in intersect_cols if c not in table.columns]
        if unknown:
            raise ConfigError(f"{source}: key 'no_nan_policy.columns': {unknown} are not columns of the fused "
                              f"table; fused columns: {fused_cols}")
        if not intersect_cols:
            raise ConfigError(f"{source}: no_nan_policy scope 'onchain' needs include_global.onchain: true")
        table, inter_stats, dead = apply_intersect(table, intersect_cols)
        fused_cols = [c for c in fused_cols if c not in dead]
    miss_stats, miss_cols = {}, pd.Series(dtype=np.int64)
    if ds.max_missing_ratio is not None:
        table, miss_stats, miss_cols = apply_missing_threshold(table, fused_cols, ds.max_missing_ratio)
    table = table.reset_index(drop=True)
    if validate:
        _check_output(table, ds.extra_field, fused_cols)
    summary = group_summary(base, table, stale_per_row, inter_stats, miss_stats)
    summary["skipped_sources"] = summary["symbol"].map(lambda sym: ";".join(skipped.get(sym, [])))
    lists = {
        "fundamental_columns.txt": fused_cols,
        "missing_threshold_columns.txt": [f"{c}\t{int(n)}" for c, n in miss_cols.items() if n > 0],
        "intersect_columns.txt": [c for c in intersect_cols if c not in dead],
        "intersect_columns_all_null.txt": dead,
    }
    snap = snapshot or {"dataset": dataclasses.asdict(ds), "post_convert": dataclasses.asdict(post),
                        "publication_lag_hours": dataclasses.asdict(lags),
                        "max_staleness_hours": dataclasses.asdict(stale)}
    snap = {**snap, "base_csv": str(base_csv), "raw_dir": str(inputs.inventory.root),
            "missing_sources": missing_sources_mode,
            "skipped_sources": sorted({g for groups in skipped.values() for g in groups}),
            "groups": result.groups, "fused_at": pd.Timestamp.now(tz="UTC").isoformat()}
    _write_dataset(out_dir, table, fused_cols, summary, lists, _audits(table, fused_cols, result.audit), snap, post)
    elapsed = time.perf_counter() - started
    logger.info("%s: %d rows x %d columns (%d fused) -> %s in %.1f s", ds.extra_field, len(table), table.shape[1],
                len(fused_cols), out_dir, elapsed)
    return FuseResult(ds.extra_field, out_dir, table, fused_cols, summary, elapsed)


# --------------------------------------------------------------------------- config driver


def _dataset_jobs(cfg: FuseConfig, experts: list[str] | None, source: str) -> list[tuple[str, str, str, PostConvert]]:
    names = list(cfg.experts_map)
    if experts:
        unknown = [e for e in experts if e not in cfg.experts_map]
        if unknown:
            raise ConfigError(f"{source}: expert(s) {unknown} not in experts_map; available: {names}")
        names = [n for n in names if n in experts]
    jobs = []
    for name in names:
        entry = cfg.experts_map[name]
        post = entry.post_convert or cfg.post_convert
        jobs += [(name, modality, path, post) for modality, path in (("base", entry.base), ("rich", entry.rich))
                 if path]
    return jobs


def resolve_raw_dir(cfg_raw_dir: str | None, base_csv: str | Path, override: str | None = None) -> Path:
    """The raw folder to read fundamentals from: ``--raw-dir``, else the one recorded by the build.

    A configured ``raw_dir`` that differs from the build's is used with a warning naming both (never a
    different folder silently); without a manifest (a panel from an older build) the configured one.
    """
    manifest = read_manifest(base_csv)
    built = Path(manifest["raw_dir"]) if manifest and manifest.get("raw_dir") else None
    if override:
        if built and Path(override).resolve() != built:
            logger.warning("--raw-dir %s differs from the raw folder of the build (%s)", override, built)
        return Path(override)
    if cfg_raw_dir and built and Path(cfg_raw_dir).resolve() != built:
        logger.warning("raw_dir %s (config) differs from the raw folder of the build of %s (%s); using the "
                       "config's. Set raw_dir: null to follow the build", cfg_raw_dir, base_csv, built)
        return Path(cfg_raw_dir)
    if built:
        return built
    if cfg_raw_dir:
        return Path(cfg_raw_dir)
    raise DataError(f"no build manifest beside {base_csv} says which raw folder the panel was built from; "
                    f"rebuild with src/build_full_merged.py, or pass --raw-dir")


def run_with_config(path: str | Path, experts: Iterable[str] | None = None, *, raw_dir: str | None = None,
                    missing_sources_mode: str | None = None, data_root: str | None = None,
                    wait: bool = True) -> dict[str, FuseResult]:
    """Fuse every dataset of ``experts_map`` (or only ``experts``) as configured in ``path``.

    ``raw_dir``, ``missing_sources_mode`` and ``data_root`` override the config (``--raw-dir``,
    ``--missing-sources``, ``--data-root``).

    Returns
    -------
    dict of str to FuseResult
        By dataset name (``extra_field``).
    """
    overrides = {k: v for k, v in (("missing_sources", missing_sources_mode), ("data_root", data_root)) if v}
    cfg = load_config(path, FuseConfig, overrides)
    base_csv, output_root = rebase(cfg.base_csv, cfg.data_root), rebase(cfg.output_root, cfg.data_root)
    jobs = _dataset_jobs(cfg, list(experts) if experts else None, str(path))
    datasets = {(e, m): load_config(p, DatasetConfig) for e, m, p, _ in jobs}  # all errors before any work
    for (expert, modality), ds in datasets.items():
        if ds.extra_field != f"{expert}_{modality}":
            logger.warning("%s: extra_field %r differs from the convention %r", expert, ds.extra_field,
                           f"{expert}_{modality}")
    with output_lock(output_root, wait, "fusion"):
        return _run_jobs(cfg, path, jobs, datasets, base_csv, output_root, raw_dir)


def _run_jobs(cfg: FuseConfig, path: str | Path, jobs: list, datasets: dict, base_csv: Path, output_root: Path,
              raw_dir: str | None) -> dict[str, FuseResult]:
    raw = resolve_raw_dir(cfg.raw_dir, base_csv, raw_dir)
    logger.info("fusing %s with raw sources from %s (missing sources: %s)", base_csv, raw, cfg.missing_sources)
    inputs = load_inputs(base_csv, raw)
    results = {}
    for expert, modality, ds_path, post in tqdm(jobs, desc="fuse", unit="dataset"):
        ds = datasets[(expert, modality)]
        snapshot = {"config": str(path), "dataset_config": ds_path, "expert": expert, "modality": modality,
                    "dataset": dataclasses.asdict(ds), "post_convert": dataclasses.asdict(post),
                    "publication_lag_hours": dataclasses.asdict(cfg.publication_lag_hours),
                    "max_staleness_hours": dataclasses.asdict(cfg.max_staleness_hours)}
        results[ds.extra_field] = fuse(
            base_csv, Path(output_root) / ds.extra_field / FULL_NAME, ds.include_symbol, ds.include_global,
            ds.max_missing_ratio, ds.no_nan_policy, cfg.validate, raw_dir=raw, dataset_type=ds.dataset_type,
            periods=cfg.periods, post_convert=post, publication_lag_hours=dataclasses.asdict(cfg.publication_lag_hours),
            max_staleness_hours=dataclasses.asdict(cfg.max_staleness_hours), global_files=cfg.global_files,
            inputs=inputs, snapshot=snapshot, missing_sources_mode=cfg.missing_sources)
    report = pd.DataFrame([{"expert": e, "modality": m, **results[datasets[(e, m)].extra_field].report_row()}
                           for e, m, _, _ in jobs])
    write_csv(report, cfg.report_csv)
    logger.info("summary of %d dataset(s) -> %s", len(report), cfg.report_csv)
    return results


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    from utils.logging_setup import configure_logging

    p = argparse.ArgumentParser(prog="python -m src.fuse_fundamentals", description=__doc__.split("\n")[0])
    p.add_argument("--config", default="pipelines/configs/fuse_fundamentals.yaml")
    p.add_argument("--experts", help="comma-separated expert names (default: all in experts_map)")
    p.add_argument("--raw-dir", help="raw folder of the fundamentals (default: the one the build used)")
    p.add_argument("--missing-sources", choices=["error", "skip"],
                   help="a source without raw files: stop listing all of them (error), or leave them out (skip)")
    p.add_argument("--data-root", help="data root of the build (its --out): data/... paths of the config move there")
    p.add_argument("--no-wait", action="store_true", help="stop (exit 2) if another fusion writes the same folder")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    configure_logging(args.verbose)
    experts = [e.strip() for e in args.experts.split(",")] if args.experts else None
    return guarded(run_with_config, args.config, experts, raw_dir=args.raw_dir,
                   missing_sources_mode=args.missing_sources, data_root=args.data_root, wait=not args.no_wait)


if __name__ == "__main__":
    raise SystemExit(main())
