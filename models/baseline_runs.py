"""Runs of the baseline experts (``experts_cli.py baseline`` and ``experts_cli.py oof --model``).

A run builds the leaf's windows exactly as a TFT run does (split fractions resolved to dates once, the same
rows, features, scalers and spans), fits a :class:`~models.baselines.BaselineExpert`, and writes the TFT's
contract under the model's own folders::

    lightning_logs/experts/<expert>/<period>/<modality>/<model>[/wfKK]/version_N/
        predictions/predictions_<expert>.<model>_<period>_<stamp>.parquet
        eval_report_<expert>.<model>_<period>_<stamp>.csv
    checkpoints/experts/<expert>/<period>/<modality>/<model>[/wfKK]/
        baseline.pkl  config_snapshot.yaml

The expert id in the file names (``<expert>.<model>``, e.g. ``Alpha-Dir-TFT.lightgbm``) keeps the baseline's
predictions apart from the TFT's in ``build_oof_for_z.py`` and the Z-Combiner, which stack them side by side.
"""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path

import pandas as pd

from models.baselines import BaselineExpert, check_model
from models.leaf_config import Leaf
from models.leaf_data import as_leaf_table, leaf_rows
from models.outputs import long_frame, utc_stamp, write_predictions
from models.prediction import SPLIT_ROWS, PredictResult
from models.training import check_splits, versions, write_snapshot
from models.window_dataset import WindowData, build_window_data, resolve_split
from utils.errors import ConfigError, DataError
from utils.eval_report import eval_report, write_eval_report
from utils.io import atomic_path

logger = logging.getLogger(__name__)


def expert_id(leaf: Leaf, model: str) -> str:
    """``<expert>.<model>``: the baseline's name in file names and stacking columns."""
    return f"{leaf.model.expert}.{model}"


def next_version(root: Path) -> Path:
    """``root/version_N`` with N one above the highest existing (TensorBoard's numbering), created."""
    found = [int(m.group(1)) for p in root.glob("version_*") if (m := re.fullmatch(r"version_(\d+)", p.name))]
    path = root / f"version_{max(found, default=-1) + 1}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def write_split(expert: BaselineExpert, data: WindowData, split: str, log_dir: Path, label: str | None = None,
                checkpoint: str = "") -> PredictResult:
    """Predict one split (``val``, ``test``, ``all``) and write its parquet file and eval report."""
    if split not in SPLIT_ROWS:
        raise ConfigError(f"--split {split!r}: use one of {list(SPLIT_ROWS)}")
    leaf, rows = expert.leaf, data.splits[SPLIT_ROWS[split]]
    if rows.size == 0:
        raise DataError(f"{leaf.config_path}: the {split} span of {leaf.model.data.path} has no window to predict")
    names = [t.name for t in leaf.targets.targets]
    frame = long_frame(expert.decode(data, rows), names, [t.kind for t in leaf.targets.targets],
                       list(leaf.model.model.quantiles), data.categories, versions(leaf, data), label or split)
    name, stamp = expert_id(leaf, expert.model), utc_stamp()
    path = write_predictions(frame, log_dir / "predictions", name, leaf.model.period, stamp)
    report = eval_report(frame, no_skill=dict(zip(names, expert.train_target_means_, strict=True)))
    report_path = write_eval_report(report.assign(split=label or split), log_dir, name, leaf.model.period, stamp)
    return PredictResult(str(path), str(report_path), len(frame), checkpoint)


def save_expert(expert: BaselineExpert, data: WindowData) -> Path:
    """Pickle the fitted expert and write ``config_snapshot.yaml`` into its checkpoint folder (atomic)."""
    folder = expert.leaf.model_ckpt_dir(expert.model)
    write_snapshot(expert.leaf, data, folder)
    with atomic_path(folder / "baseline.pkl") as tmp, open(tmp, "wb") as fh:
        pickle.dump(expert, fh)
    return folder / "baseline.pkl"


def run_baseline(leaf: Leaf, model: str, splits: tuple[str, ...] = ("val",), table: pd.DataFrame | None = None,
                 label: str | None = None, wait: bool = True) -> list[PredictResult]:
    """Fit ``model`` on the leaf's training rows, calibrate on validation, write the predictions of ``splits``.

    ``label`` renames the ``split`` column of the written rows (walk-forward blocks use ``oof``). The model's
    checkpoint folder is locked for the run (``wait=False``: stop with a ``DataError`` if another run holds it).
    """
    from utils.locks import output_lock

    check_model(model)
    table = as_leaf_table(leaf, table)
    resolved = resolve_split(leaf, leaf_rows(leaf, table)["timestamp"])
    data = build_window_data(resolved, table)
    check_splits(leaf, data)
    with output_lock(leaf.model_ckpt_dir(model), wait, f"{model} baseline run of this leaf"):
        expert = BaselineExpert(resolved, model, leaf.model.seed).fit(data)
        saved = save_expert(expert, data)
        log_dir = next_version(leaf.model_log_dir(model))
        results = [write_split(expert, data, split, log_dir, label, str(saved)) for split in splits]
    for r in results:
        logger.info("%s %s: predictions %s (%d rows), eval report %s", expert_id(leaf, model), leaf.model.period,
                    r.predictions, r.rows, r.eval_report)
    return results
