"""Collect the experts' out-of-fold predictions into the Z-Combiner's training table.

Usage::

    python pipelines/build_oof_for_z.py --predictions-root lightning_logs \\
        --data-path data/pkl_merged/full_merged.pkl --output datasets/z_train.parquet \\
        [--splits oof] [--fundamentals-path PATH]

Steps:

1. every ``predictions_<expert>_<period>_<stamp>.parquet`` under ``--predictions-root``; rows of the
   ``--splits`` spans only (default ``oof``: validation rows fit the calibration and chose the
   checkpoint, so they are not out of sample for the calibrated score);
2. version checks: ``schema_ver`` must be one value over all files, and ``data_ver`` / ``expert_ver``
   one value per (expert, period); a mismatch is a :class:`DataError` naming the files and values;
3. duplicates (the same expert, symbol, period, time_idx and target from two runs) keep the row of the
   **newest run** (the latest file stamp); they are never averaged;
4. one row per (symbol, period, time_idx): ``<expert>__<target>__score`` for every target,
   ``<expert>__<target>__uncertainty`` for regression targets, ``<expert>__pred_time`` (when the
   prediction was available: the decision bar's close, ``timestamp + period``; timestamps are bar open
   times) and ``<expert>__train_window_id``;
5. the ``target_*`` columns of ``--data-path`` and the regime features (:mod:`features.regime_core`,
   with funding and open interest from ``--fundamentals-path`` when given or found);
6. coverage per expert (share of rows with its scores) logged and written beside the output as
   ``<output stem>_coverage.csv``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features.regime_core import REGIME_COLUMNS, regime_features
from utils.cli import add_output_flags, guarded
from utils.errors import DataError
from utils.io import read_frame, write_csv, write_parquet
from utils.locks import output_lock
from utils.partitioned import is_partitioned, panel_columns, read_partitioned
from utils.paths import rebase
from utils.timeline import period_delta

logger = logging.getLogger(__name__)

KEY = ["symbol", "period", "time_idx"]
FUNDAMENTAL_SOURCES = ("funding_rate", "oi_value")


def parse_name(path: Path) -> tuple[str, str, str]:
    """(expert, period, stamp) from ``predictions_<expert>_<period>_<stamp>.parquet``."""
    parts = path.stem.removeprefix("predictions_").rsplit("_", 2)
    if len(parts) != 3:
        raise DataError(f"{path}: not a predictions_<expert>_<period>_<timestamp>.parquet file name")
    return parts[0], parts[1], parts[2]


def read_predictions(root: str | Path, splits: list[str]) -> pd.DataFrame:
    """All prediction rows of ``splits`` with ``expert``, ``file`` and ``stamp`` columns added."""
    files = sorted(Path(root).rglob("predictions_*.parquet"))
    if not files:
        raise DataError(f"no predictions_*.parquet under {root}; run scripts/experts_cli.py oof first")
    frames = []
    for path in files:
        expert, _, stamp = parse_name(path)
        frame = pd.read_parquet(path)
        frame = frame[frame["split"].isin(splits)]
        if frame.empty:
            continue
        if frame.duplicated(KEY + ["target"]).any():
            raise DataError(f"{path}: duplicated (symbol, period, time_idx, target) rows inside one file")
        frames.append(frame.assign(expert=expert, file=str(path), stamp=stamp))
    if not frames:
        raise DataError(f"no prediction rows of split(s) {splits} in {len(files)} file(s) under {root}; "
                        f"walk-forward (experts_cli.py oof) writes split 'oof'")
    return pd.concat(frames, ignore_index=True)


def check_versions(rows: pd.DataFrame) -> None:
    """One ``schema_ver`` overall; one ``data_ver`` and ``expert_ver`` per (expert, period)."""
    def fail(what: str, part: pd.DataFrame, field: str) -> DataError:
        per_file = part.groupby("file")[field].first()
        listing = "; ".join(f"{f}: {v!r}" for f, v in per_file.items())
        return DataError(f"version mismatch in {what}: '{field}' differs between files ({listing}); "
                         f"re-run the older predictions or keep one version under the predictions root")

    if rows["schema_ver"].nunique() > 1:
        raise fail("all predictions", rows, "schema_ver")
    for (expert, period), part in rows.groupby(["expert", "period"]):
        for field in ("data_ver", "expert_ver"):
            if part[field].nunique() > 1:
                raise fail(f"{expert} {period}", part, field)


def newest_run_wins(rows: pd.DataFrame) -> pd.DataFrame:
    """Keep, for each (expert, symbol, period, time_idx, target), the row of the newest file stamp."""
    ordered = rows.sort_values("stamp", kind="stable")
    kept = ordered.drop_duplicates(["expert", *KEY, "target"], keep="last")
    dropped = len(rows) - len(kept)
    if dropped:
        logger.warning("%d duplicate prediction rows from older runs replaced by the newest run's", dropped)
    return kept


def pivot(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (symbol, period, time_idx) with one column per expert x target (score, uncertainty)."""
    rows = rows.assign(col=rows["expert"] + "__" + rows["target"])
    score = rows.pivot_table(index=KEY, columns="col", values="score", aggfunc="first")
    score.columns = [f"{c}__score" for c in score.columns]
    reg = rows[rows["kind"] == "regression"]
    parts = [score]
    if not reg.empty:
        unc = reg.pivot_table(index=KEY, columns="col", values="uncertainty", aggfunc="first")
        unc.columns = [f"{c}__uncertainty" for c in unc.columns]
        parts.append(unc)
    meta = rows.drop_duplicates(["expert", *KEY]).pivot(index=KEY, columns="expert", values="train_window_id")
    meta.columns = [f"{c}__train_window_id" for c in meta.columns]
    parts.append(meta)
    wide = pd.concat(parts, axis=1)
    wide = wide[sorted(wide.columns)].reset_index()
    stamps = rows.drop_duplicates(KEY).set_index(KEY)["timestamp"]
    wide.insert(3, "timestamp", stamps.reindex(pd.MultiIndex.from_frame(wide[KEY])).to_numpy())
    step = wide["period"].map(period_delta)
    for expert in sorted(rows["expert"].unique()):
        has = wide.filter(like=f"{expert}__").filter(like="__score").notna().any(axis=1)
        wide[f"{expert}__pred_time"] = (wide["timestamp"] + step).where(has)
    return wide


def _fundamentals(path: Path | None, data_path: Path) -> pd.DataFrame | None:
    if path is None:  # data/pkl_merged/full_merged.pkl -> data/merged/expert_group/*_base/
        group = data_path.resolve().parents[1] / "merged" / "expert_group"
        found = sorted(group.glob("*_base/full_merged_with_fundamentals.parquet"))
        path = next((c for c in found if set(FUNDAMENTAL_SOURCES) <= set(pq.read_schema(c).names)), None)
    if path is None:
        logger.warning("no fundamentals table found: regime funding / OI slopes will be NaN")
        return None
    logger.info("regime funding / OI from %s", path)
    return pd.read_parquet(path, columns=["symbol", "period", "timestamp", *FUNDAMENTAL_SOURCES])


#: What the stacking table takes from the panel (its targets too): row keys and the regime fields' inputs.
PANEL_COLUMNS = ("time_idx", "gap_before", "high", "low", "close", "volume", *FUNDAMENTAL_SOURCES)


def read_panel(path: str | Path, periods: list[str] | None = None) -> pd.DataFrame:
    """The merged panel (pkl, parquet or csv), or the build's partitioned panel when the file is not there.

    ``data/pkl_merged/full_merged.pkl`` (an export a large build does not write) resolves to the partitioned
    ``data/merged/full_merged/``, read through a projection: ``periods`` and the columns the table needs.
    """
    path = Path(path)
    for root in (path, path.with_suffix(""), path.parent.parent / "merged" / path.stem):
        if not path.is_file() and is_partitioned(root):
            names = panel_columns(root)
            keys = ("symbol", "period", "timestamp", *PANEL_COLUMNS)
            keep = [c for c in names if c in keys or c.startswith("target_")]
            return read_partitioned(root, periods=periods, columns=keep)
    return read_frame(path, "--data-path {path} not found; build it with python src/build_full_merged.py")


def build(predictions_root: str | Path, data_path: str | Path, splits: list[str] | None = None,
          fundamentals_path: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(z_train table, coverage per expert)."""
    rows = read_predictions(predictions_root, splits or ["oof"])
    panel = read_panel(data_path, sorted(rows["period"].unique()))
    # predictions of another dataset (other symbols or periods under the same predictions root) do not belong
    # to this panel: stacking them would add rows without targets
    pairs = pd.MultiIndex.from_frame(panel[["symbol", "period"]].drop_duplicates())
    mine = pd.MultiIndex.from_frame(rows[["symbol", "period"]]).isin(pairs)
    if not mine.all():
        other = rows.loc[~mine, ["symbol", "period"]].drop_duplicates()
        shown = ", ".join(f"{s} {p}" for s, p in other.head(8).itertuples(index=False))
        logger.warning("%d prediction rows of %d (symbol, period) pair(s) not in %s ignored (%s%s)", int((~mine).sum()),
                       len(other), data_path, shown, " ..." if len(other) > 8 else "")
        rows = rows[mine]
    if rows.empty:
        raise DataError(f"no prediction under {predictions_root} is for a symbol and period of {data_path}; "
                        f"run scripts/experts_cli.py oof on this dataset (--data-root) first")
    check_versions(rows)
    wide = pivot(newest_run_wins(rows))
    panel = panel[panel["period"].isin(wide["period"].unique())]
    fund = _fundamentals(Path(fundamentals_path) if fundamentals_path else None, Path(data_path))
    if fund is not None:
        panel = panel.merge(fund, on=["symbol", "period", "timestamp"], how="left", suffixes=("", "_fund"))
    regime = regime_features(panel)
    empty = [c for c in REGIME_COLUMNS if regime[c].isna().all()]
    if empty:
        logger.warning("regime column(s) %s dropped: their sources are missing from the panel", empty)
    targets = [c for c in panel.columns if c.startswith("target_")]
    extra = panel[["symbol", "period", "timestamp", *targets]].join(regime[[c for c in REGIME_COLUMNS
                                                                           if c not in empty]])
    wide["timestamp"] = pd.to_datetime(wide["timestamp"], utc=True).dt.as_unit("ns")
    extra["timestamp"] = pd.to_datetime(extra["timestamp"], utc=True).dt.as_unit("ns")
    z = wide.merge(extra, on=["symbol", "period", "timestamp"], how="left", validate="one_to_one")
    z = z.sort_values(["period", "symbol", "timestamp"], ignore_index=True)
    experts = sorted(rows["expert"].unique())
    coverage = pd.DataFrame([{"expert": e, "rows": int(z[f"{e}__pred_time"].notna().sum()),
                              "coverage": float(z[f"{e}__pred_time"].notna().mean())} for e in experts])
    return z, coverage


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    from utils.logging_setup import configure_logging

    p = argparse.ArgumentParser(prog="pipelines/build_oof_for_z.py", description=__doc__.split("\n")[0])
    p.add_argument("--predictions-root", default="lightning_logs")
    p.add_argument("--data-path", default="data/pkl_merged/full_merged.pkl")
    p.add_argument("--output", default="datasets/z_train.parquet")
    p.add_argument("--splits", default="oof", help="comma-separated prediction splits to stack (default oof)")
    p.add_argument("--fundamentals-path", default=None,
                   help="table with funding_rate / oi_value for the regime slopes (default: the first "
                        "data/merged/expert_group/*_base table that has them)")
    add_output_flags(p, "run writes the output folder")
    args = p.parse_args(argv)
    configure_logging(args.verbose)
    return guarded(_build_table, args)


def _build_table(args: argparse.Namespace) -> None:
    data_path = rebase(args.data_path, args.data_root)
    funda = rebase(args.fundamentals_path, args.data_root) if args.fundamentals_path else None
    with output_lock(Path(args.output).parent, not args.no_wait, "stacking-table build"):
        z, coverage = build(args.predictions_root, data_path, args.splits.split(","), funda)
        out = write_parquet(z, args.output)
        write_csv(coverage, Path(args.output).with_name(Path(args.output).stem + "_coverage.csv"))
    logger.info("%s: %d rows x %d columns", out, len(z), z.shape[1])
    for _, r in coverage.iterrows():
        logger.info("coverage %-24s %7d rows  %.1f%%", r["expert"], r["rows"], 100 * r["coverage"])


if __name__ == "__main__":
    raise SystemExit(main())
