"""Four-stage feature screening per expert: filter -> embedded -> time-aware permutation -> wrapper -> aggregation.

Usage::

    python -m pipelines.run_feature_screening --config pipelines/configs/feature_selection.yaml \\
        [--experts alpha_dir_tft,derivatives_micro] [--periods 1d] [--force]

For each selected expert (any spelling: ``Alpha-Dir-TFT``, ``alpha_dir_tft``, ``alpha_dir``) and each of its
tables (``pkl_path``: base, ``rich_pkl_path``: rich), per period:

* targets: the union of the expert's ``targets.yaml`` over the configured periods; regression targets go
  to IC and classification targets to MI unless ``filter.params.ic_targets / mi_targets`` say otherwise;
* outer split (``splits.outer``: the last ``days`` or ``ratio`` of the timeline) is held back: every
  statistic of stages 1-4 uses the training part only (rows whose labels are known before the boundary); the
  outer span starts an embargo of the label horizon later (:class:`utils.timeline.TimeSplit`);
* stages write under ``<output_root>/<Expert>/<modality>/``; a finished stage (marker ``_done.json`` with
  the settings' hash) is reused unless ``--force``;
* aggregation writes ``<output_root>/<Expert>/aggregated_core.csv``, ``selected_features.txt`` (also copied
  to ``<expert_config_root>/<Expert>/selected_features.txt`` for leaf configs), ``plus_features.txt``,
  ``optimized_features.txt``, ``summary.json`` and, with ``finalize.forward_compare``, ``forward_eval.csv``;
* the run's core list is exported to ``configs/selected_features.txt`` (``selected_features_export``; by
  default beside ``expert_config_root``): the core list of ``aggregation.export_expert`` when that expert
  ran, else of the last expert of the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from features.selection.aggregate import aggregate, evidence_table
from features.selection.common import fit_tree, is_classification, model_score
from features.selection.config import ScreeningConfig, StageWeights, resolve_experts
from features.selection.embedded_stage import EmbeddedStage, read_tft_gating
from features.selection.filter_stage import FilterStage, TargetInfo
from features.selection.tree_perm import TreePermStage
from features.selection.wrapper import WrapperStage
from models.leaf_config import TargetsConfig
from models.leaf_data import data_source
from utils.cli import add_output_flags, guarded
from utils.config import load_config
from utils.errors import ConfigError, DataError
from utils.io import read_csv_fast, read_frame, write_csv, write_json, write_text
from utils.locks import output_lock
from utils.partitioned import is_partitioned, read_meta, read_partitioned
from utils.paths import rebase
from utils.timeline import PERIODS, TimeSplit, embargo_bars, feature_columns, time_at_share

logger = logging.getLogger(__name__)



@dataclass
class PeriodData:
    """One table's rows of one period, split into the training part and the outer span."""

    modality: str
    period: str
    train: pd.DataFrame
    outer: pd.DataFrame
    features: list[str]


def expert_targets(cfg: ScreeningConfig, expert: str) -> list[TargetInfo]:
    """Union (deduplicated by name) of the expert's targets over the configured periods."""
    seen: dict[str, TargetInfo] = {}
    p = cfg.filter.params
    for period in cfg.periods:
        path = Path(cfg.expert_config_root) / expert / period / cfg.experts[expert].leaf_modality / "targets.yaml"
        if not path.is_file():
            raise ConfigError(f"{path} not found: the screening reads the expert's targets from its leaf configs")
        for t in load_config(path, TargetsConfig).targets:  # the leaf's own typed loader
            if t.name in seen:
                continue
            test = "mi" if t.kind == "classification" else "ic"
            if p.ic_targets is not None or p.mi_targets is not None:
                test = "mi" if t.name in (p.mi_targets or []) else "ic"
            seen[t.name] = TargetInfo(t.name, t.kind, t.horizon, test)
    return list(seen.values())


def read_table(path: str | Path, periods: list[str] | None = None) -> pd.DataFrame:
    """An expert table (partitioned dataset, parquet, pkl or csv); only ``periods`` of a partitioned one.

    ``.../full_merged_with_fundamentals.pkl`` reads the partitioned ``.../full_merged_with_fundamentals/`` when the
    fusion wrote no single file (above its export limit).
    """
    src = data_source(path)
    if is_partitioned(src):
        return read_partitioned(src, periods=periods)
    return read_frame(src, "pkl_path {path} not found; build the expert tables with python -m src.fuse_fundamentals")


def table_periods(path: str | Path) -> list[str] | None:
    """The periods of a partitioned table from its partition list (no data read), else None."""
    src = data_source(path)
    if not is_partitioned(src):
        return None
    return list(dict.fromkeys(p for p, _ in read_meta(src)["partitions"]))


def outer_split(frame: pd.DataFrame, cfg: ScreeningConfig, period: str, horizon: int,
                source: str = "the table") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training part, outer span): training labels end before the outer span starts."""
    o = cfg.splits.outer
    ts = pd.to_datetime(frame["timestamp"], utc=True)
    start = ts.max() - pd.Timedelta(days=o.days) if o.mode == "days" else time_at_share(ts, 1 - o.ratio)
    fit, held = TimeSplit.two_way(start, period, horizon, embargo_bars(None, horizon)).masks(ts).values()
    train, outer = frame[fit], frame[held]
    if len(train) < 500:
        raise DataError(f"{source}: only {len(train)} {period} training rows before the outer span ({start}); "
                        f"need >= 500: shorten splits.outer")
    return train, outer


def period_data(table: pd.DataFrame, modality: str, period: str, targets: list[TargetInfo],
                cfg: ScreeningConfig, source: str = "the table") -> PeriodData:
    """Rows, features and split of one period of a table (``source`` names it in error messages)."""
    frame = table[table["period"] == period].sort_values(["timestamp", "symbol"], ignore_index=True)
    where = f"{source} ({modality})"
    if frame.empty:
        raise DataError(f"{where}: no {period} rows; build the period in the merged panel or drop it from 'periods'")
    missing = [t.name for t in targets if t.name not in frame]
    if missing:
        raise DataError(f"{where}: target column(s) {missing} missing; the expert's targets.yaml names them")
    target_names = {t.name for t in targets}
    features = feature_columns(frame, exclude=target_names)
    train, outer = outer_split(frame, cfg, period, max(t.horizon for t in targets), where)
    return PeriodData(modality, period, train, outer, features)


def settings_hash(cfg: ScreeningConfig, expert: str, section: str, paths: list[str]) -> str:
    """Hash of the settings a stage depends on (its section, the split, the periods, the data files)."""
    d = dataclasses.asdict(cfg)
    stamp = [(p, Path(p).stat().st_mtime_ns if Path(p).exists() else 0) for p in paths]
    blob = json.dumps([expert, d["periods"], d["splits"], d["filter"], d.get(section), d["seed"], stamp],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def stage_cached(folder: Path, key: str, force: bool) -> bool:
    """True when the stage in ``folder`` finished with the same settings (and ``--force`` is off)."""
    marker = folder / "_done.json"
    return not force and marker.is_file() and json.loads(marker.read_text()).get("key") == key


def mark_done(folder: Path, key: str) -> None:
    """Record a finished stage."""
    write_json({"key": key, "finished": pd.Timestamp.now(tz="UTC").isoformat()}, folder / "_done.json")


def run_stage1(data: list[PeriodData], targets: list[TargetInfo], cfg: ScreeningConfig, folder: Path) -> None:
    """Stage 1 over every period: ``filter_stats.csv``, ``ic_mi.csv``, ``allowlist.txt``, ``clusters.csv``."""
    stats, icmi, clusters = [], [], []
    for d in tqdm(data, desc=f"stage 1 filter ({folder.parent.name})", unit="period"):
        st = FilterStage(cfg.filter.params, d.period, cfg.seed).fit(d.train, d.features, targets)
        stats.append(st.stats_.assign(modality=d.modality, period=d.period))
        icmi.append(st.ic_mi_.assign(modality=d.modality, period=d.period))
        clusters.append(st.clusters_.rename_axis("feature").reset_index().assign(period=d.period))
    filter_stats = pd.concat(stats, ignore_index=True)
    write_csv(filter_stats, folder / "filter_stats.csv")
    write_csv(pd.concat(icmi, ignore_index=True), folder / "ic_mi.csv")
    write_csv(pd.concat(clusters, ignore_index=True), folder / "clusters.csv")
    allow = sorted(filter_stats.loc[filter_stats["representative"].fillna(False).astype(bool), "feature"].unique())
    write_text("\n".join(allow) + ("\n" if allow else ""), folder / "allowlist.txt")


def _allowlist(filter_stats: pd.DataFrame, period: str, target: str) -> list[str]:
    rows = filter_stats[(filter_stats["period"] == period) & (filter_stats["target"] == target)
                        & filter_stats["representative"].fillna(False).astype(bool)]
    return rows.sort_values("t_nw", key=np.abs, ascending=False)["feature"].tolist()


def _pairs(data: list[PeriodData], targets: list[TargetInfo], override: list[str] | None = None):
    names = set(override) if override else None
    return [(d, t) for d in data for t in targets if names is None or t.name in names]


def run_stage2(data, targets, cfg: ScreeningConfig, filter_stats: pd.DataFrame, folder: Path, expert: str) -> None:
    """Stage 2: ``raw_scores.csv``, ``summary.csv``, ``allowlist_embedded.txt``."""
    rows = []
    for d, t in tqdm(_pairs(data, targets, cfg.embedded.targets_override), desc="stage 2 embedded", unit="target"):
        feats = _allowlist(filter_stats, d.period, t.name)
        if not feats:
            continue
        gating = sorted(Path("lightning_logs/experts").glob(f"{expert}/{d.period}/{d.modality}/tft/version_*/"
                                                            f"tft_gating.csv"))
        block = cfg.tree_perm.block_len_by_period.get(d.period, 48)
        st = EmbeddedStage(cfg.embedded, block, cfg.seed).fit(
            d.train.sort_values(["symbol", "timestamp"]), feats, t.name, t.kind == "classification",
            read_tft_gating(gating))
        rows.append(st.scores_.assign(modality=d.modality, period=d.period))
    raw = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["feature", "target", "modality", "period", "kept"])
    write_csv(raw, folder / "raw_scores.csv")
    summary = raw.groupby("feature").agg(kept_rate=("kept", "mean"), pairs=("kept", "size")).reset_index() \
        if len(raw) else pd.DataFrame(columns=["feature", "kept_rate", "pairs"])
    write_csv(summary, folder / "summary.csv")
    kept = sorted(raw.loc[raw["kept"].astype(bool), "feature"].unique()) if len(raw) else []
    write_text("\n".join(kept) + ("\n" if kept else ""), folder / "allowlist_embedded.txt")


def run_stage3(data, targets, cfg: ScreeningConfig, filter_stats: pd.DataFrame, folder: Path,
               clusters: pd.DataFrame | None = None, features_from: str = "allowlist") -> pd.DataFrame:
    """Stage 3: ``tree_perm/<period>/<target>_importances.csv`` and ``tree_perm/summary.csv``."""
    rows = []
    for d, t in tqdm(_pairs(data, targets), desc="stage 3 time permutation", unit="target"):
        feats = _allowlist(filter_stats, d.period, t.name) if features_from == "allowlist" else d.features
        if not feats:
            continue
        cl = None
        if clusters is not None:
            cl = clusters[clusters["period"] == d.period].set_index("feature")["cluster"]
        st = TreePermStage(cfg.tree_perm, d.period, t.horizon, cfg.seed).fit(d.train, feats, t.name,
                                                                             t.kind == "classification", cl)
        imp = st.importances_.assign(modality=d.modality, period=d.period, target=t.name)
        write_csv(imp, folder / d.period / f"{t.name}_importances.csv")
        rows.append(imp)
    summary = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["feature", "era", "perm_delta", "perm_ci95_low", "modality", "period", "target"])
    write_csv(summary, folder / "summary.csv")
    return summary


def run_stage4(data, targets, cfg: ScreeningConfig, filter_stats: pd.DataFrame, folder: Path) -> None:
    """Stage 4: ``selected.csv`` (+ ``rfe_path.csv`` or ``ga_gene_frequency.csv``)."""
    rows, paths, genes = [], [], []
    for d, t in tqdm(_pairs(data, targets), desc=f"stage 4 wrapper ({cfg.wrapper.method})", unit="target"):
        feats = _allowlist(filter_stats, d.period, t.name)
        if not feats:
            continue
        st = WrapperStage(cfg.wrapper, d.period, t.horizon, cfg.seed).fit(d.train, feats, t.name,
                                                                           t.kind == "classification")
        key = {"modality": d.modality, "period": d.period, "target": t.name}
        rows.append(pd.DataFrame({"feature": feats, "selected": [f in st.selected_ for f in feats], **key}))
        if st.path_ is not None:
            paths.append(st.path_.assign(**key))
        if st.gene_frequency_ is not None:
            genes.append(st.gene_frequency_.assign(**key))
    selected = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["feature", "selected", "modality", "period", "target"])
    write_csv(selected, folder / "selected.csv")
    if paths:
        write_csv(pd.concat(paths, ignore_index=True), folder / "rfe_path.csv")
    if genes:
        write_csv(pd.concat(genes, ignore_index=True), folder / "ga_gene_frequency.csv")


def _read(path: Path) -> pd.DataFrame | None:
    return read_csv_fast(path) if path.is_file() else None


def screen_modality(cfg: ScreeningConfig, expert: str, modality: str, path: str, targets: list[TargetInfo],
                    force: bool, table: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[PeriodData]]:
    """Run (or reuse) stages 1-4 for one table (read from ``path`` unless given); evidence table and period data."""
    table = read_table(path, cfg.periods) if table is None else table
    data = [period_data(table, modality, p, targets, cfg, path) for p in cfg.periods]
    root = Path(cfg.output_root) / expert / modality
    dirs = {"filter": root / "stage1_filter", "embedded": root / "stage2_embedded", "tree_perm": root / "tree_perm",
            "wrapper": root / "stage4_wrapper"}
    enabled = {"filter": True, "embedded": cfg.embedded.enabled, "tree_perm": cfg.tree_perm.enabled,
               "wrapper": cfg.wrapper.enabled}
    for stage, folder in dirs.items():
        if not enabled[stage]:
            continue
        key = settings_hash(cfg, expert, stage, [path])
        if stage_cached(folder, key, force):
            logger.info("%s %s %s: reusing %s (use --force to recompute)", expert, modality, stage, folder)
            continue
        if folder.exists():
            shutil.rmtree(folder)  # stale outputs of other settings must not mix with these
        filter_stats = _read(dirs["filter"] / "filter_stats.csv")
        if stage == "filter":
            run_stage1(data, targets, cfg, folder)
        elif stage == "embedded":
            run_stage2(data, targets, cfg, filter_stats, folder, expert)
        elif stage == "tree_perm":
            run_stage3(data, targets, cfg, filter_stats, folder, _read(dirs["filter"] / "clusters.csv"))
        else:
            run_stage4(data, targets, cfg, filter_stats, folder)
        mark_done(folder, key)
    ev = evidence_table(_read(dirs["filter"] / "filter_stats.csv"),
                        _read(dirs["embedded"] / "raw_scores.csv") if enabled["embedded"] else None,
                        _read(dirs["tree_perm"] / "summary.csv") if enabled["tree_perm"] else None,
                        _read(dirs["wrapper"] / "selected.csv") if enabled["wrapper"] else None)
    return ev, data


def forward_compare(data: list[PeriodData], targets: list[TargetInfo], core: list[str], seed: int,
                    drop: dict[str, set[str]] | None = None) -> pd.DataFrame:
    """A tree model on the outer span: the core subset vs every usable feature (trained on the training part),
    beside no skill (the training part's base rate, or mean, as a constant).

    Every row has the rank score (``roc_auc`` or ``spearman``) and the proper loss (``brier`` or ``rmse``);
    ``beats_no_skill`` says whether that loss is below no skill's. ``drop``: per period, the columns stage 1
    dropped before testing (levels, all-NaN, constant), which the "full" set leaves out too.
    """
    rows = []
    for d in data:
        if d.modality != "base" or not core:
            continue
        usable = [f for f in d.features if f not in (drop or {}).get(d.period, set())]
        for t in targets:
            tr, te = d.train[d.train[t.name].notna()], d.outer[d.outer[t.name].notna()]
            if te.empty:
                continue
            y_tr, y_te = tr[t.name].to_numpy(dtype=np.float64), te[t.name].to_numpy(dtype=np.float64)
            cls = is_classification(y_tr)
            key = {"period": d.period, "target": t.name, "metric": "roc_auc" if cls else "spearman",
                   "outer_rows": len(te)}
            const = np.full(len(y_te), y_tr.mean())
            ref = _loss(y_te, const, cls)
            rows.append({**key, "feature_set": "no_skill", "n_features": 0, "score": 0.5 if cls else 0.0,
                         "loss": ref, "beats_no_skill": False})
            for name, feats in (("core", [f for f in core if f in d.features]), ("full", usable)):
                if not feats:
                    continue
                m = fit_tree("lightgbm", tr[feats].to_numpy(dtype=np.float64), y_tr, cls, 200, seed)
                X_te = te[feats].to_numpy(dtype=np.float64)
                pred = m.predict_proba(X_te)[:, 1] if cls else m.predict(X_te)
                loss = _loss(y_te, pred, cls)
                rows.append({**key, "feature_set": name, "n_features": len(feats),
                             "score": model_score(m, X_te, y_te, cls), "loss": loss, "beats_no_skill": loss < ref})
    frame = pd.DataFrame(rows)
    if len(frame):
        frame.insert(frame.columns.get_loc("loss"), "loss_name",
                     np.where(frame["metric"] == "roc_auc", "brier", "rmse"))
    return frame


def _loss(y: np.ndarray, p: np.ndarray, classification: bool) -> float:
    """Brier score (classification) or RMSE."""
    return float(np.mean((p - y) ** 2)) if classification else float(np.sqrt(np.mean((p - y) ** 2)))


def _stage1_drops(output_root: Path, modality: str = "base") -> dict[str, set[str]]:
    """Per period, the features stage 1 dropped before testing (from ``filter_stats.csv``)."""
    stats = _read(output_root / modality / "stage1_filter" / "filter_stats.csv")
    if stats is None or "drop_reason" not in stats:
        return {}
    dropped = stats[stats["drop_reason"].fillna("").astype(str) != ""]
    return {p: set(g["feature"]) for p, g in dropped.groupby("period")}


def present_periods(table: pd.DataFrame, source: str) -> list[str]:
    """The periods of ``table``, shortest first."""
    if "period" not in table.columns:
        raise DataError(f"{source}: no 'period' column; build the table with src/build_full_merged.py")
    present = set(table["period"].astype(str))
    return [p for p in PERIODS if p in present]


def run_expert(cfg: ScreeningConfig, expert: str, force: bool = False, wait: bool = True) -> dict:
    """Screen one expert end to end, holding the lock of its report folder; returns its summary.

    With ``periods`` unset (None) the expert is screened on every period present in its base table.
    """
    with output_lock(Path(cfg.output_root) / expert, wait, "screening"):
        return _run_expert(cfg, expert, force)


def _run_expert(cfg: ScreeningConfig, expert: str, force: bool) -> dict:
    entry = cfg.experts[expert]
    listed = table_periods(entry.pkl_path)  # a partitioned table is read later, period by period as needed
    base = None if listed is not None else read_table(entry.pkl_path)
    present = [p for p in PERIODS if p in listed] if listed is not None else present_periods(base, entry.pkl_path)
    if cfg.periods is None:
        cfg = dataclasses.replace(cfg, periods=present)
        logger.info("%s: periods present in %s: %s", expert, entry.pkl_path, cfg.periods)
    elif set(cfg.periods) - set(present):
        # a config written for hourly crypto run on a daily stock table: screen what the table has, and say so
        kept = [p for p in cfg.periods if p in present] or present
        logger.warning("%s: period(s) %s not in %s (it has %s); screening %s", expert,
                       sorted(set(cfg.periods) - set(present)), entry.pkl_path, present, kept)
        cfg = dataclasses.replace(cfg, periods=kept)
    targets = expert_targets(cfg, expert)
    tables = [("base", entry.pkl_path)] + ([("rich", entry.rich_pkl_path)] if entry.rich_pkl_path else [])
    evidence, base_data = [], []
    for modality, path in tables:
        ev, data = screen_modality(cfg, expert, modality, path, targets, force, base if modality == "base" else None)
        evidence.append(ev.assign(modality=modality))
        base_data += data
    weights = load_config(cfg.aggregation.weights_yaml, StageWeights).weights if cfg.aggregation.weights_yaml else None
    result = aggregate(pd.concat(evidence, ignore_index=True), cfg.aggregation, weights)
    out = Path(cfg.output_root) / expert
    write_csv(result["table"], out / "aggregated_core.csv")
    for name, key in (("selected_features.txt", "core"), ("plus_features.txt", "plus"),
                      ("optimized_features.txt", "optimized")):
        write_text("\n".join(result[key]) + ("\n" if result[key] else ""), out / name)
    copy = Path(cfg.expert_config_root) / expert / "selected_features.txt"
    write_text((out / "selected_features.txt").read_text(), copy)
    summary = {"expert": expert, "targets": [dataclasses.asdict(t) for t in targets], "periods": cfg.periods,
               "pairs": result["pairs"], "core": result["core"], "plus": result["plus"],
               "optimized": result["optimized"], "leak_suspects": result["leak_suspects"],
               "selected_features_copy": str(copy)}
    if cfg.finalize.forward_compare.enabled:
        fwd = forward_compare(base_data, targets, result["core"], cfg.seed, _stage1_drops(out))
        write_csv(fwd, out / "forward_eval.csv")
        summary["forward_eval"] = fwd.to_dict(orient="records")
    write_json(summary, out / "summary.json")
    logger.info("%s: %d core, %d plus, %d optimized features; leak suspects %s", expert, len(result["core"]),
                len(result["plus"]), len(result["optimized"]), result["leak_suspects"] or "none")
    return summary


def export_core(cfg: ScreeningConfig, summaries: dict[str, dict]) -> Path:
    """Write the run's core list to ``cfg.export_path`` atomically (see the module docstring for whose)."""
    wanted = resolve_experts(cfg, [cfg.aggregation.export_expert])[0] if cfg.aggregation.export_expert else None
    expert = wanted if wanted in summaries else list(summaries)[-1]
    core = summaries[expert]["core"]
    path = write_text("\n".join(core) + ("\n" if core else ""), cfg.export_path)
    logger.info("%s: core list (%d features) exported to %s", expert, len(core), path)
    return path


def with_data_root(cfg, data_root: str | None):
    """``cfg`` with every expert table's ``data/...`` path moved under ``data_root`` (``--data-root``)."""
    if not data_root:
        return cfg
    experts = {name: dataclasses.replace(
        e, pkl_path=str(rebase(e.pkl_path, data_root)),
        rich_pkl_path=str(rebase(e.rich_pkl_path, data_root)) if e.rich_pkl_path else e.rich_pkl_path)
        for name, e in cfg.experts.items()}
    return dataclasses.replace(cfg, experts=experts)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    from utils.logging_setup import configure_logging

    p = argparse.ArgumentParser(prog="python -m pipelines.run_feature_screening", description=__doc__.split("\n")[0])
    p.add_argument("--config", default="pipelines/configs/feature_selection.yaml")
    p.add_argument("--experts", default=None, help="comma-separated, any spelling (default: experts_run or all)")
    p.add_argument("--force", action="store_true", help="recompute finished stages")
    p.add_argument("--periods", default=None,
                   help="comma-separated periods (default: the config's, or every period present in the table)")
    add_output_flags(p, "screening writes an expert")
    args = p.parse_args(argv)
    configure_logging(args.verbose)
    return guarded(_screen, args)


def _screen(args: argparse.Namespace) -> None:
    periods = [x.strip() for x in args.periods.split(",") if x.strip()] if args.periods else None
    overrides = {"periods": periods} if periods else {}  # validated by the loader like the file's own value
    cfg = with_data_root(load_config(args.config, ScreeningConfig, overrides), args.data_root)
    summaries = {}
    for expert in resolve_experts(cfg, args.experts.split(",") if args.experts else None):
        summaries[expert] = run_expert(cfg, expert, args.force, wait=not args.no_wait)
        print(f"{expert}: core {len(summaries[expert]['core'])} features -> {Path(cfg.output_root) / expert}; "
              f"leak suspects: {summaries[expert]['leak_suspects'] or 'none'}")
    print(f"core list exported to {export_core(cfg, summaries)}")


if __name__ == "__main__":
    raise SystemExit(main())
