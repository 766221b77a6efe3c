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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from tqdm.auto import tqdm

from src import fundamentals as fu
from src.bars import OHLCV
from src.fuse_config import DatasetConfig, FuseConfig, FusionJob, PostConvert
from src.fusion import (
    KEYS,
    FusionInputs,
    apply_intersect,
    apply_missing_mode,
    apply_missing_threshold,
    compute_fused,
    load_inputs,
    missing_sources,
)
from src.merging import read_manifest
from utils.cli import add_output_flags, guarded
from utils.config import from_mapping, load_config
from utils.errors import ConfigError, DataError
from utils.io import atomic_dir, remove_stale, write_csv
from utils.locks import output_lock
from utils.paths import rebase
from utils.timeline import ID_COLUMNS, ROW_KEY, target_columns

logger = logging.getLogger(__name__)

CORE_COLUMNS = [*ID_COLUMNS, *OHLCV]
FULL_NAME = "full_merged_with_fundamentals.csv"


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


def fuse(base_csv: str | Path, out_csv: str | Path, include_symbol: dict[str, bool] | None = None,
         include_global: dict[str, bool] | None = None, max_missing_ratio: float | None = None,
         no_nan_policy: dict | None = None, validate: bool = True, *,
         raw_dir: str | Path = "data/raw", dataset_type: str = "combined", periods: Iterable[str] | None = None,
         post_convert: dict | None = None, publication_lag_hours: dict | None = None,
         max_staleness_hours: dict | None = None, global_files: dict[str, str] | None = None,
         missing_sources_mode: str = "error") -> FuseResult:
    """Keyword form of :func:`fuse_dataset` (the README's Python usage): the arguments are validated into a
    :class:`~src.fuse_config.FusionJob` exactly like the YAML files.

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
    no_nan_policy : dict
        ``{enabled, scope: onchain|custom, method: intersect, columns}``.
    validate : bool
        Check the result (non-empty, unique sorted keys, finite fused values) before writing.
    raw_dir, dataset_type, periods, post_convert, publication_lag_hours, max_staleness_hours, global_files
        As in ``pipelines/configs/fuse_fundamentals.yaml``.
    missing_sources_mode : {'error', 'skip'}
        A source group without raw files for the panel's symbols: one ``DataError`` listing all of them, or
        leave them out with one warning (recorded in ``dataset_group_summary.csv`` and the audit).
    """
    dataset = {"dataset_type": dataset_type, "extra_field": Path(out_csv).parent.name,
               "include_symbol": include_symbol or {}, "include_global": include_global or {},
               "max_missing_ratio": max_missing_ratio, "no_nan_policy": no_nan_policy or {}}
    given = {"post_convert": post_convert, "publication_lag_hours": publication_lag_hours,
             "max_staleness_hours": max_staleness_hours, "global_files": global_files,
             "periods": list(periods) if periods else None}
    job = from_mapping(FusionJob, {"dataset": dataset, "validate": validate, "missing_sources": missing_sources_mode,
                                   **{k: v for k, v in given.items() if v is not None}}, source="fuse() arguments")
    return fuse_dataset(base_csv, Path(out_csv).parent, job, load_inputs(base_csv, raw_dir))


def _no_nan_policy(table: pd.DataFrame, ds: DatasetConfig, groups: dict[str, list[str]],
                   skipped: dict[str, list[str]], fused_cols: list[str],
                   source: str) -> tuple[pd.DataFrame, list[str], dict, list[str]]:
    """The intersect trim of ``no_nan_policy``: (table, intersect columns, per-series stats, all-null columns)."""
    pol = ds.no_nan_policy
    if not pol.enabled:
        return table, [], {}, []
    if pol.scope == "onchain" and any("global.onchain" in g for g in skipped.values()):
        logger.warning("dataset %s: no_nan_policy (scope onchain) not applied: the on-chain source was left out",
                       ds.extra_field)
        return table, [], {}, []
    intersect_cols = groups.get("global.onchain", []) if pol.scope == "onchain" else pol.columns
    unknown = [c for c in intersect_cols if c not in table.columns]
    if unknown:
        raise ConfigError(f"{source}: key 'no_nan_policy.columns': {unknown} are not columns of the fused "
                          f"table; fused columns: {fused_cols}")
    if not intersect_cols:
        raise ConfigError(f"{source}: no_nan_policy scope 'onchain' needs include_global.onchain: true")
    table, stats, dead = apply_intersect(table, intersect_cols)
    return table, intersect_cols, stats, dead


def fuse_dataset(base_csv: str | Path, out_dir: str | Path, job: FusionJob, inputs: FusionInputs,
                 snapshot: dict | None = None) -> FuseResult:
    """Fuse fundamentals into the merged panel and write one expert dataset into ``out_dir``.

    ``inputs`` are the loaded panel and sources (shared across datasets by :func:`run_with_config`);
    ``snapshot`` is stored as ``config_snapshot.yaml`` (default: the job).
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    source = f"dataset {job.dataset.extra_field}"
    ds, lags, stale, stems = job.dataset, job.publication_lag_hours, job.max_staleness_hours, job.global_files
    base = inputs.base
    if job.periods:
        unknown = sorted(set(job.periods) - set(base["period"].unique()))
        if unknown:
            raise ConfigError(f"{source}: key 'periods' = {job.periods}: {unknown} not in the base panel")
        base = base[base["period"].isin(job.periods)].reset_index(drop=True)
    symbols = sorted(base["symbol"].unique())
    ds, skipped = apply_missing_mode(ds, missing_sources(symbols, ds, inputs, stems), job.missing_sources,
                                 inputs.inventory.root, symbols)
    result = compute_fused(base, ds, inputs, lags, stale, stems, skipped)
    result.audit += [{"source": g, "symbol": sym, "period": "*", "status": "skipped: no raw files"}
                     for sym, groups in skipped.items() for g in groups]
    fused_cols = list(result.columns)
    targets = target_columns(base)
    table = pd.concat([base.drop(columns=targets), pd.DataFrame(result.columns, index=base.index),
                       base[targets]], axis=1)
    stale_per_row = pd.Series(result.stale, index=base.index)

    table, intersect_cols, inter_stats, dead = _no_nan_policy(table, ds, result.groups, skipped, fused_cols, source)
    fused_cols = [c for c in fused_cols if c not in dead]
    miss_stats, miss_cols = {}, pd.Series(dtype=np.int64)
    if ds.max_missing_ratio is not None:
        table, miss_stats, miss_cols = apply_missing_threshold(table, fused_cols, ds.max_missing_ratio)
    table = table.reset_index(drop=True)
    if job.validate:
        _check_output(table, ds.extra_field, fused_cols)
    summary = group_summary(base, table, stale_per_row, inter_stats, miss_stats)
    summary["skipped_sources"] = summary["symbol"].map(lambda sym: ";".join(skipped.get(sym, [])))
    lists = {
        "fundamental_columns.txt": fused_cols,
        "missing_threshold_columns.txt": [f"{c}\t{int(n)}" for c, n in miss_cols.items() if n > 0],
        "intersect_columns.txt": [c for c in intersect_cols if c not in dead],
        "intersect_columns_all_null.txt": dead,
    }
    snap = {**(snapshot or dataclasses.asdict(job)), "base_csv": str(base_csv), "raw_dir": str(inputs.inventory.root),
            "missing_sources": job.missing_sources,
            "skipped_sources": sorted({g for groups in skipped.values() for g in groups}),
            "groups": result.groups, "fused_at": pd.Timestamp.now(tz="UTC").isoformat()}
    _write_dataset(out_dir, table, fused_cols, summary, lists, _audits(table, fused_cols, result.audit), snap,
                   job.post_convert)
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
                    **dataclasses.asdict(FusionJob.of(cfg, ds, post))}
        results[ds.extra_field] = fuse_dataset(base_csv, Path(output_root) / ds.extra_field,
                                               FusionJob.of(cfg, ds, post), inputs, snapshot)
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
    add_output_flags(p, "fusion writes the same folder")
    args = p.parse_args(argv)
    configure_logging(args.verbose)
    experts = [e.strip() for e in args.experts.split(",")] if args.experts else None
    return guarded(run_with_config, args.config, experts, raw_dir=args.raw_dir,
                   missing_sources_mode=args.missing_sources, data_root=args.data_root, wait=not args.no_wait)


if __name__ == "__main__":
    raise SystemExit(main())
