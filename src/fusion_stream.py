"""One expert dataset fused series by series: :class:`DatasetFusion`.

Each (period, symbol) series of the base panel is fused, trimmed by the dataset's policies, checked and
written as one partition of ``<dataset>/full_merged_with_fundamentals/``; what the audits, the group summary
and the column lists need is accumulated on the way (counts, sums, extremes), so no finished table is kept.
Several datasets can be fed the same symbol in turn (:func:`src.fuse_fundamentals.run_with_config` does), so
each raw source is parsed once per run and forgotten after its symbol.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from src import fundamentals as fu
from src.build_stages import FLOAT64_KEPT
from src.fuse_config import FusionJob
from src.fusion import FusionInputs, apply_intersect, apply_missing_threshold, compute_fused
from src.merging import order_columns
from utils.errors import ConfigError, DataError
from utils.moments import Moments
from utils.partitioned import write_meta, write_table_partition
from utils.timeline import ROW_KEY, is_target, target_columns

logger = logging.getLogger(__name__)

DATASET_DIR = "full_merged_with_fundamentals"
#: Base columns the policies, checks and audits of a series need besides its fused columns.
_SMALL_KEYS = ("symbol", "period", "timestamp", "gap_before")


@dataclass
class _Audit:
    """What ``fuse_audit/`` and ``dataset_group_summary.csv`` need, accumulated series by series."""

    columns: list[str]
    rows: int = 0
    per_period: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)
    moments: Moments | None = None
    sources: dict[tuple[str, str], dict] = field(default_factory=dict)
    panel: list[dict] = field(default_factory=list)
    summary: list[pd.DataFrame] = field(default_factory=list)
    dropped_missing: pd.Series = field(default_factory=lambda: pd.Series(dtype=np.int64))

    def add_sources(self, audit: list[dict]) -> None:
        """A source audited once per series: keep its own figures once, add up the stale rows."""
        for row in audit:
            key = (row["source"], row["symbol"])
            if key in self.sources:
                self.sources[key]["stale_rows"] += row["stale_rows"]
            else:
                self.sources[key] = dict(row)

    def add_table(self, table: pd.DataFrame, period: str, symbol: str) -> None:
        values = table[self.columns].to_numpy(dtype=np.float64)
        n, present = self.per_period.get(period, (0, np.zeros(len(self.columns))))
        self.per_period[period] = (n + len(table), present + (~np.isnan(values)).sum(axis=0))
        part = Moments.of(values)
        self.moments = part if self.moments is None else self.moments.merge(part)
        a = fu.time_audit(table["timestamp"])
        self.panel.append({"source": "panel", "symbol": symbol, "period": period, **a,
                           "gaps": int(table["gap_before"].sum()) if "gap_before" in table else a["gaps"],
                           "stale_rows": 0})
        self.rows += len(table)

    def frames(self, fused: list[str], skipped_rows: list[dict]) -> dict[str, pd.DataFrame]:
        """The three ``fuse_audit/`` tables over the fused columns still in the dataset."""
        idx = [self.columns.index(c) for c in fused]
        cover = pd.DataFrame({p: present[idx] / max(n, 1) for p, (n, present) in sorted(self.per_period.items())},
                             index=pd.Index(fused, name="column"))
        m = self.moments
        if fused and m is not None:
            total = sum(n for n, _ in self.per_period.values())
            cover["all"] = m.count[idx] / max(total, 1)
            with np.errstate(invalid="ignore", divide="ignore"):
                std = np.sqrt(m.m2[idx] / (m.count[idx] - 1))
            stats = pd.DataFrame({"count": m.count[idx].astype(np.int64),
                                  "null_fraction": 1.0 - m.count[idx] / max(total, 1),
                                  "mean": np.where(m.count[idx] > 0, m.mean[idx], np.nan), "std": std,
                                  "min": m.lo[idx], "max": m.hi[idx]}, index=pd.Index(fused, name="column"))
        else:
            cover, stats = pd.DataFrame(), pd.DataFrame()
        by_symbol = sorted((r for r in self.sources.values() if r["symbol"] != "*"), key=lambda r: r["symbol"])
        panel = sorted(self.panel, key=lambda r: (r["symbol"], r["period"]))
        rows = by_symbol + [r for r in self.sources.values() if r["symbol"] == "*"] + skipped_rows + panel
        return {"coverage.csv": cover.rename_axis("column").reset_index(),
                "column_stats.csv": stats.rename_axis("column").reset_index(),
                "time_audit.csv": pd.DataFrame(rows)}


_STAT_NAMES = ("missing_threshold_rows", "missing_threshold_cols_count", "intersect_trimmed_rows",
               "intersect_all_null_cols_count")


def series_summary(symbol: str, period: str, rows_before: int, kept: pd.Series, stale: int,
                   *stats: dict) -> pd.DataFrame:
    """One row of ``dataset_group_summary.csv``: rows before and after the policies, first / last timestamp kept,
    what each policy removed, stale values (built directly: a fusion writes thousands of series)."""
    key = (symbol, period)
    some = len(kept) > 0
    row = {"symbol": symbol, "period": period, "rows_before": rows_before, "rows": len(kept),
           "first_timestamp": kept.min() if some else pd.NaT, "last_timestamp": kept.max() if some else pd.NaT}
    for name in _STAT_NAMES:
        row[name] = int(next((s[key][name] for s in stats if key in s and name in s[key]), 0))
    row["stale_values"] = stale
    return pd.DataFrame([row])


def check_series(table: pd.DataFrame, name: str, fused: list[str]) -> None:
    """The output checks that hold series by series (keys unique and increasing, finite fused values)."""
    if table.duplicated(list(ROW_KEY)).any():
        raise DataError(f"dataset {name}: duplicated (symbol, period, timestamp) rows after fusion")
    order = table["timestamp"].diff().dropna()
    if (order <= pd.Timedelta(0)).any():
        raise DataError(f"dataset {name}: timestamps are not strictly increasing within (symbol, period)")
    if fused and np.isinf(table[fused].to_numpy(dtype=np.float64)).any():
        raise DataError(f"dataset {name}: infinite values in fused columns")


class DatasetFusion:
    """Fuse one dataset into ``staging`` series by series (:meth:`add` per symbol, then :meth:`finish`).

    ``dead``: intersect columns already known to be null everywhere (a second pass; see :meth:`finish`).
    """

    def __init__(self, job: FusionJob, inputs: FusionInputs, staging: Path, ds, skipped: dict[str, list[str]],
                 dead: list[str] | None = None) -> None:
        self.job, self.inputs, self.staging, self.ds, self.skipped = job, inputs, staging, ds, skipped
        self.name = ds.extra_field
        self.dead = list(dead or [])
        self.fused: list[str] | None = None
        self.groups: dict[str, list[str]] = {}
        self.intersect: list[str] = []
        self.present: dict[str, bool] = {}
        self.partitions: list[tuple[str, str]] = []
        self.columns: list[str] = []
        self.audit: _Audit | None = None

    def _fused_columns(self, first: dict[str, list[str]]) -> list[str]:
        """Every fused column in a fixed order: symbol groups (canonical order), then global groups."""
        sym_groups, glob_groups = self.ds.groups()
        cols = [c for g in sym_groups for c in fu.group_columns(g)]
        return cols + [c for g in glob_groups for c in first.get(f"global.{g}", [])]

    def _intersect_columns(self, table: pd.DataFrame) -> list[str]:
        pol = self.ds.no_nan_policy
        if not pol.enabled:
            return []
        if pol.scope == "onchain" and any("global.onchain" in g for g in self.skipped.values()):
            return []
        cols = self.groups.get("global.onchain", []) if pol.scope == "onchain" else pol.columns
        unknown = [c for c in cols if c not in table.columns]
        if unknown:
            raise ConfigError(f"dataset {self.name}: key 'no_nan_policy.columns': {unknown} are not columns of the "
                              f"fused table; fused columns: {self.fused}")
        if not cols:
            raise ConfigError(f"dataset {self.name}: no_nan_policy scope 'onchain' needs include_global.onchain: "
                              f"true")
        return list(cols)

    def _fused(self, base: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """The series' keys and fused columns (policies work on these only), and its stale cells per row."""
        job = self.job
        result = compute_fused(base, self.ds, self.inputs, job.publication_lag_hours, job.max_staleness_hours,
                               job.global_files, self.skipped)
        if self.fused is None:
            self.groups = dict(result.groups)
            self.fused = self._fused_columns(result.groups)
        else:
            for group, cols in result.groups.items():
                self.groups.setdefault(group, cols)
        if self.audit is None:
            self.audit = _Audit(columns=[c for c in self.fused if c not in self.dead])
        self.audit.add_sources(result.audit)
        fused = pd.DataFrame({c: result.columns.get(c, np.full(len(base), np.nan)) for c in self.fused},
                             index=base.index)
        pol = self.ds.no_nan_policy
        named = [c for c in (pol.columns if pol.enabled and pol.scope == "custom" else []) if c in base.columns]
        keys = [c for c in (*_SMALL_KEYS, *named) if c in base.columns and c not in fused.columns]
        return pd.concat([base[keys], fused], axis=1), result.stale

    def add(self, symbol: str) -> None:
        """Fuse every period of ``symbol`` this dataset takes, one partition each."""
        for period, sym in self.inputs.base.partitions(self.job.periods):
            if sym == symbol:
                self._add_series(period, symbol)

    def _policies(self, small: pd.DataFrame) -> tuple[pd.DataFrame, dict, dict]:
        """The intersect and missing-ratio trims of one series (on its keys and fused columns)."""
        stats_i, stats_m = {}, {}
        if not self.intersect and self.ds.no_nan_policy.enabled:
            self.intersect = self._intersect_columns(small)
        if self.intersect:
            for c in self.intersect:
                self.present[c] = self.present.get(c, False) or bool(small[c].notna().any())
            small, stats_i, _ = apply_intersect(small, self.intersect, dead=self.dead)
        if self.ds.max_missing_ratio is not None:
            live = [c for c in self.fused if c not in self.dead]
            small, stats_m, dropped = apply_missing_threshold(small, live, self.ds.max_missing_ratio)
            self.audit.dropped_missing = self.audit.dropped_missing.add(dropped, fill_value=0)
        return small.drop(columns=[c for c in self.dead if c in small.columns]), stats_i, stats_m

    def _add_series(self, period: str, symbol: str) -> None:
        base = self.inputs.base.read(period, symbol)
        small, stale = self._fused(base)
        small, stats_i, stats_m = self._policies(small)
        kept = small.index.to_numpy()
        small = small.reset_index(drop=True)
        live = [c for c in self.fused if c not in self.dead]
        if self.job.validate:
            check_series(small, self.name, live)
        self.audit.summary.append(series_summary(symbol, period, len(base), small["timestamp"], int(stale.sum()),
                                                 stats_i, stats_m))
        self.audit.add_table(small, period, symbol)
        # the written table: the base series' Arrow columns (converted once for all datasets), rows kept, the fused
        # columns between the inputs and the targets, float features as float32
        rows = self.inputs.base.arrow(period, symbol).take(pa.array(kept, pa.int64()))
        targets = target_columns(base)
        front = rows.drop_columns(targets)
        fused = pa.Table.from_pandas(small[live], preserve_index=False)
        table = pa.Table.from_arrays([*front.columns, *fused.columns, *rows.select(targets).columns],
                                     names=[*front.column_names, *live, *targets])
        cast = {f.name for f in table.schema
                if f.type == pa.float64() and f.name not in FLOAT64_KEPT and not is_target(f.name)}
        table = table.cast(pa.schema([pa.field(f.name, pa.float32()) if f.name in cast else f
                                      for f in table.schema]))
        write_table_partition(table, self.staging / DATASET_DIR, period, symbol)
        self.partitions.append((period, symbol))
        seen = set(self.columns)
        self.columns += [c for c in ["symbol", "period", *table.column_names] if c not in seen]

    def newly_dead(self) -> list[str]:
        """Intersect columns null in every series, not yet known as such (the dataset must be fused again)."""
        return [c for c in self.intersect if not self.present.get(c, False) and c not in self.dead]

    def finish(self) -> None:
        """Record the dataset's partition list and columns (``_dataset.json``); raise when no row is left."""
        if self.audit is None or self.audit.rows == 0:
            raise DataError(f"dataset {self.name}: no rows left after the missing-ratio / intersect policies; relax "
                            f"max_missing_ratio or the no_nan_policy columns (see dataset_group_summary.csv of a "
                            f"looser run)")
        order = {p: i for i, p in enumerate(self.inputs.base.periods)}
        parts = sorted(self.partitions, key=lambda p: (order[p[0]], p[1]))
        cols = list(order_columns(pd.DataFrame(columns=["symbol", "period", *self.columns])).columns)
        write_meta(self.staging / DATASET_DIR, parts, cols, self.audit.rows)
