"""Point-in-time fusion of funding, open interest, premium and on-chain data into expert datasets.

Usage::

    python -m src.fuse_fundamentals --config pipelines/configs/fuse_fundamentals.yaml [--experts A,B]
    python -c "from src.fuse_fundamentals import run_with_config; \\
               run_with_config('pipelines/configs/fuse_fundamentals.yaml')"

Each dataset ``<Expert>_<base|rich>`` is written to ``data/merged/expert_group/<name>/``, series by series
(:mod:`src.fusion_stream`): the partitioned ``full_merged_with_fundamentals/period=<tf>/symbol=<SYMBOL>/``, its
exports ``full_merged_with_fundamentals.{csv,pkl,parquet}`` and ``full_merged_slim.csv`` (``post_convert``; by
default up to 2M rows),
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
import shutil
import time
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from tqdm.auto import tqdm

from src.bars import OHLCV
from src.build_config import AUTO_EXPORT_MAX_ROWS
from src.fuse_config import DatasetConfig, FuseConfig, FusionJob, PostConvert
from src.fusion import (  # noqa: F401  (apply_intersect / apply_missing_threshold: the README's imports)
    KEYS,
    FusionInputs,
    apply_intersect,
    apply_missing_mode,
    apply_missing_threshold,
    load_inputs,
    missing_sources,
)
from src.fusion_stream import DATASET_DIR, DatasetFusion
from src.merging import export_panel, read_manifest
from utils.cli import add_output_flags, guarded
from utils.config import from_mapping, load_config
from utils.errors import ConfigError, DataError
from utils.io import atomic_dir, remove_stale, write_csv
from utils.locks import output_lock
from utils.partitioned import read_partitioned
from utils.paths import rebase
from utils.timeline import ID_COLUMNS, target_columns

logger = logging.getLogger(__name__)

CORE_COLUMNS = [*ID_COLUMNS, *OHLCV]
FULL_NAME = "full_merged_with_fundamentals.csv"


# --------------------------------------------------------------------------- outputs


@dataclass
class FuseResult:
    """What one dataset fusion produced (the table itself is on disk: :attr:`table` reads it)."""

    name: str
    out_dir: Path
    fundamental_columns: list[str]
    summary: pd.DataFrame
    seconds: float = 0.0
    rows: int = 0
    columns: int = 0
    exports: list[str] = dataclasses.field(default_factory=list)

    @property
    def dataset(self) -> Path:
        """The partitioned dataset (``full_merged_with_fundamentals/period=../symbol=../``)."""
        return self.out_dir / DATASET_DIR

    @property
    def table(self) -> pd.DataFrame:
        """The whole fused table, read from disk (it may be large: prefer ``read_partitioned`` with a projection)."""
        return read_partitioned(self.dataset)

    def report_row(self) -> dict[str, Any]:
        """One row of ``experts_group_summary.csv``."""
        s = self.summary
        kept = s[s["rows"] > 0]
        return {
            "dataset": self.name, "rows": self.rows, "columns": self.columns,
            "fundamental_columns": len(self.fundamental_columns), "symbols": kept["symbol"].nunique(),
            "periods": ",".join(sorted(kept["period"].unique())),
            "first_timestamp": kept["first_timestamp"].min() if len(kept) else "",
            "last_timestamp": kept["last_timestamp"].max() if len(kept) else "",
            "missing_threshold_rows": int(s["missing_threshold_rows"].sum()),
            "intersect_trimmed_rows": int(s["intersect_trimmed_rows"].sum()),
            "stale_values": int(s["stale_values"].sum()), "output_dir": str(self.out_dir),
            "skipped_sources": ";".join(sorted({g for v in s.get("skipped_sources", pd.Series(dtype=str))
                                                for g in str(v).split(";") if g})),
        }


def _exports(post: PostConvert, rows: int) -> list[str]:
    """The single-file forms to write: each ``post_convert`` flag, ``null`` = up to AUTO_EXPORT_MAX_ROWS rows."""
    auto = rows <= AUTO_EXPORT_MAX_ROWS
    out = [e for e in ("csv", "pkl", "parquet") if (getattr(post, e) if getattr(post, e) is not None else auto)]
    # the slim CSV: with csv: true, and up to the limit unless every form is turned off (--export none)
    none = all(getattr(post, e) is False for e in ("csv", "pkl", "parquet"))
    return out + (["slim"] if post.csv or (auto and not none) else [])


def _write_outputs(tmp: Path, fusion: DatasetFusion, post: PostConvert, skipped_rows: list[dict],
                   snapshot: dict) -> FuseResult:
    """Everything beside the partitions: exports, column lists, group summary, audits, config snapshot."""
    dead = fusion.dead
    fused = [c for c in fusion.fused if c not in dead]
    exports = _exports(post, fusion.audit.rows)
    if not exports or exports == ["slim"]:
        logger.info("%s: %s rows; the single-file forms are off above %s rows (post_convert: true writes them): "
                    "read %s", fusion.name, f"{fusion.audit.rows:,}", f"{AUTO_EXPORT_MAX_ROWS:,}", tmp / DATASET_DIR)
    slim = [c for c in [*CORE_COLUMNS, *fused] if c in fusion.columns] + target_columns(
        pd.DataFrame(columns=fusion.columns))
    export_panel(tmp / DATASET_DIR, {"csv": tmp / FULL_NAME, "pkl": tmp / f"{Path(FULL_NAME).stem}.pkl",
                                     "parquet": tmp / f"{Path(FULL_NAME).stem}.parquet",
                                     "slim": tmp / "full_merged_slim.csv"}, exports, slim_columns=slim)
    miss = fusion.audit.dropped_missing.reindex(fused).fillna(0)
    lists = {
        "fundamental_columns.txt": fused,
        "missing_threshold_columns.txt": [f"{c}\t{int(n)}" for c, n in miss.items() if n > 0],
        "intersect_columns.txt": [c for c in fusion.intersect if c not in dead],
        "intersect_columns_all_null.txt": dead,
    }
    for name, items in lists.items():
        (tmp / name).write_text("".join(f"{x}\n" for x in items), encoding="utf-8")
    summary = pd.concat(fusion.audit.summary, ignore_index=True).sort_values(KEYS, ignore_index=True)
    summary["skipped_sources"] = summary["symbol"].map(lambda sym: ";".join(fusion.skipped.get(sym, [])))
    summary.to_csv(tmp / "dataset_group_summary.csv", index=False)
    (tmp / "fuse_audit").mkdir()
    for name, frame in fusion.audit.frames(fused, skipped_rows).items():
        frame.to_csv(tmp / "fuse_audit" / name, index=False)
    snapshot = {**snapshot, "groups": fusion.groups, "exports": exports}
    (tmp / "config_snapshot.yaml").write_text(yaml.safe_dump(snapshot, sort_keys=False), encoding="utf-8")
    return FuseResult(fusion.name, Path(), fused, summary, rows=fusion.audit.rows, columns=len(fusion.columns),
                      exports=exports)


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


@dataclass
class _Job:
    """One dataset of a run: where it goes, what it is, and its fusion once started."""

    out_dir: Path
    job: FusionJob
    snapshot: dict
    ds: DatasetConfig | None = None
    skipped: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    fusion: DatasetFusion | None = None


def _prepare(item: _Job, inputs: FusionInputs) -> None:
    """Check the job's periods against the panel and settle its missing sources (errors before any work)."""
    job = item.job
    source = f"dataset {job.dataset.extra_field}"
    if job.periods:
        unknown = sorted(set(job.periods) - set(inputs.base.periods))
        if unknown:
            raise ConfigError(f"{source}: key 'periods' = {job.periods}: {unknown} not in the base panel")
    symbols = sorted({s for _, s in inputs.base.partitions(job.periods)})
    item.ds, item.skipped = apply_missing_mode(job.dataset, missing_sources(symbols, job.dataset, inputs,
                                                                            job.global_files),
                                               job.missing_sources, inputs.inventory.root, symbols)


def fuse_datasets(base_csv: str | Path, items: list[_Job], inputs: FusionInputs) -> list[FuseResult]:
    """Fuse several datasets symbol by symbol (each raw source parsed once) and swap each folder in whole.

    Every dataset is staged beside its folder; a failure anywhere leaves every earlier output intact.
    """
    started = time.perf_counter()
    for item in items:
        _prepare(item, inputs)
    for parent in {i.out_dir.parent for i in items}:
        for path in remove_stale(parent):
            logger.info("removed the leftover %s of an earlier, interrupted run", path)
    symbols = sorted({s for i in items for _, s in inputs.base.partitions(i.job.periods)})
    results = []
    with ExitStack() as stack:
        stagings = [stack.enter_context(atomic_dir(i.out_dir)) for i in items]
        for item, tmp in zip(items, stagings, strict=True):
            item.fusion = DatasetFusion(item.job, inputs, tmp, item.ds, item.skipped)
        _feed([i.fusion for i in items], symbols, inputs, "fuse")
        for item, tmp in zip(items, stagings, strict=True):
            dead = item.fusion.newly_dead()
            if dead:  # rare: an intersect column null in every series; fuse this dataset again without it
                logger.warning("dataset %s: intersect column(s) %s are null in every series; dropped, and the "
                               "dataset fused again", item.ds.extra_field, dead)
                shutil.rmtree(tmp / DATASET_DIR, ignore_errors=True)
                item.fusion = DatasetFusion(item.job, inputs, tmp, item.ds, item.skipped, dead=dead)
                _feed([item.fusion], symbols, inputs, f"fuse {item.ds.extra_field} again")
            item.fusion.finish()
            skipped_rows = [{"source": g, "symbol": sym, "period": "*", "status": "skipped: no raw files"}
                            for sym, groups in item.skipped.items() for g in groups]
            snap = {**item.snapshot, "base_csv": str(base_csv), "raw_dir": str(inputs.inventory.root),
                    "missing_sources": item.job.missing_sources,
                    "skipped_sources": sorted({g for groups in item.skipped.values() for g in groups}),
                    "fused_at": pd.Timestamp.now(tz="UTC").isoformat()}
            res = _write_outputs(tmp, item.fusion, item.job.post_convert, skipped_rows, snap)
            results.append(dataclasses.replace(res, out_dir=item.out_dir))
    elapsed = time.perf_counter() - started
    for res in results:
        res.seconds = elapsed / len(results)
        logger.info("%s: %d rows x %d columns (%d fused) -> %s", res.name, res.rows, res.columns,
                    len(res.fundamental_columns), res.out_dir)
    return results


def _feed(fusions: list[DatasetFusion], symbols: list[str], inputs: FusionInputs, what: str) -> None:
    for sym in tqdm(symbols, desc=what, unit="symbol"):
        for fusion in fusions:
            fusion.add(sym)
        inputs.evict(sym)  # done with this symbol's sources


def fuse_dataset(base_csv: str | Path, out_dir: str | Path, job: FusionJob, inputs: FusionInputs,
                 snapshot: dict | None = None) -> FuseResult:
    """Fuse fundamentals into the merged panel and write one expert dataset into ``out_dir``.

    ``inputs`` are the panel and the raw sources (see :func:`fuse_datasets`); ``snapshot`` is stored as
    ``config_snapshot.yaml`` (default: the job).
    """
    return fuse_datasets(base_csv, [_Job(Path(out_dir), job, snapshot or dataclasses.asdict(job))], inputs)[0]


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
                    wait: bool = True, export: str | None = None) -> dict[str, FuseResult]:
    """Fuse every dataset of ``experts_map`` (or only ``experts``) as configured in ``path``.

    ``raw_dir``, ``missing_sources_mode`` and ``data_root`` override the config (``--raw-dir``,
    ``--missing-sources``, ``--data-root``); ``export`` (``--export``: ``auto``, ``none`` or a comma list of
    csv, pkl, parquet) replaces every dataset's ``post_convert``.

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
    if export is not None:
        jobs = [(e, m, p, _post_convert(export)) for e, m, p, _ in jobs]
    with output_lock(output_root, wait, "fusion"):
        return _run_jobs(cfg, path, jobs, datasets, base_csv, output_root, raw_dir)


def _post_convert(export: str) -> PostConvert:
    """``--export``: ``auto`` (each form up to the row limit), ``none``, or the forms named (csv, pkl, parquet)."""
    if export == "auto":
        return PostConvert()
    chosen = set() if export == "none" else {e.strip() for e in export.split(",") if e.strip()}
    unknown = sorted(chosen - {"csv", "pkl", "parquet"})
    if unknown:
        raise ConfigError(f"--export {export!r}: unknown export(s) {unknown}; use auto, none, or csv,pkl,parquet")
    return PostConvert(csv="csv" in chosen, pkl="pkl" in chosen, parquet="parquet" in chosen)


def _run_jobs(cfg: FuseConfig, path: str | Path, jobs: list, datasets: dict, base_csv: Path, output_root: Path,
              raw_dir: str | None) -> dict[str, FuseResult]:
    raw = resolve_raw_dir(cfg.raw_dir, base_csv, raw_dir)
    logger.info("fusing %s with raw sources from %s (missing sources: %s)", base_csv, raw, cfg.missing_sources)
    inputs = load_inputs(base_csv, raw)
    items = []
    for expert, modality, ds_path, post in jobs:
        ds = datasets[(expert, modality)]
        job = FusionJob.of(cfg, ds, post)
        snapshot = {"config": str(path), "dataset_config": ds_path, "expert": expert, "modality": modality,
                    **dataclasses.asdict(job)}
        items.append(_Job(Path(output_root) / ds.extra_field, job, snapshot))
    results = {r.name: r for r in fuse_datasets(base_csv, items, inputs)}
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
    p.add_argument("--export", help="single-file forms beside each partitioned dataset: auto (default: the "
                                    "config's post_convert), none, or a comma list of csv,pkl,parquet")
    add_output_flags(p, "fusion writes the same folder")
    args = p.parse_args(argv)
    configure_logging(args.verbose)
    experts = [e.strip() for e in args.experts.split(",")] if args.experts else None
    return guarded(run_with_config, args.config, experts, raw_dir=args.raw_dir,
                   missing_sources_mode=args.missing_sources, data_root=args.data_root, wait=not args.no_wait,
                   export=args.export)


if __name__ == "__main__":
    raise SystemExit(main())
