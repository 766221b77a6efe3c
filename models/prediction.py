"""Prediction from a checkpoint alone: rebuild the leaf, its data transforms and the model, then predict.

The checkpoint's ``hyper_parameters['spec']`` holds the resolved configs, the feature list, the
categories and the fitted scalers, and its state holds the fitted temperatures, so nothing of the
training process is needed. :func:`predict` writes ``predictions_*.parquet`` and an eval report into
the Lightning log dir (see :mod:`models.outputs` for the contract).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from models.callbacks import PredictionWriter, ReleaseFreedMemory
from models.checkpoints import checkpoint_outcome
from models.leaf_config import Leaf
from models.leaf_data import as_leaf_table
from models.tft_module import MyTFTModule
from models.window_dataset import WindowData, build_window_data, make_loader
from utils.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

Split = Literal["val", "test", "all"]
#: predict split -> WindowData split (test/all include the latest bars whose outcome is not known yet)
SPLIT_ROWS = {"val": "val", "test": "predict_test", "all": "predict_all"}


@dataclass
class PredictResult:
    """Where a prediction run wrote its outputs."""

    predictions: str
    eval_report: str
    rows: int
    checkpoint: str


def precision_for(leaf: Leaf) -> str:
    """``auto``: bf16-mixed on CUDA, 32-bit on CPU."""
    p = leaf.model.trainer.precision
    if p != "auto":
        return p
    return "bf16-mixed" if torch.cuda.is_available() else "32-true"


def resolve_checkpoint(leaf: Leaf, which: str = "best") -> Path:
    """``best`` (recorded in ``last.ckpt``), ``last``, or an explicit ``.ckpt`` path."""
    if which not in ("best", "last"):
        path = Path(which)
    else:
        last = leaf.ckpt_dir / "last.ckpt"
        best, _ = checkpoint_outcome(last)
        path = Path(best) if which == "best" and best else last
    if not path.is_file():
        raise ConfigError(f"--ckpt {which}: checkpoint {path} not found; train the leaf first "
                          f"(python train_multi_tft.py --config {leaf.config_path})")
    return path


def load_expert(ckpt: str | Path) -> tuple[MyTFTModule, Leaf]:
    """Model (eval mode, on the CPU) and leaf config from a checkpoint file."""
    module = MyTFTModule.load_from_checkpoint(str(ckpt), map_location="cpu")
    module.eval()
    return module, module.leaf


def checkpoint_data(module: MyTFTModule, leaf: Leaf, table: pd.DataFrame | None = None) -> WindowData:
    """The leaf's windows transformed with the checkpoint's categories and scalers."""
    table = as_leaf_table(leaf, table)
    # checkpoints from before the level rule carry no verdict: {} keeps every column their rules chose
    return build_window_data(leaf, table, categories=module.spec["categories"], scalers=module.spec["scalers"],
                             features=module.spec["features"], levels=module.spec.get("excluded_levels", {}),
                             known_names=module.spec["known"])


def predict(module: MyTFTModule, leaf: Leaf, split: Split = "val", data: WindowData | None = None,
            log_dir: str | Path | None = None, checkpoint: str = "", table: pd.DataFrame | None = None,
            label: str | None = None) -> PredictResult:
    """Predict ``split`` on one device and write the parquet file and eval report.

    Parameters
    ----------
    module, leaf
        From :func:`load_expert` (or a trained module and its leaf).
    split : {'val', 'test', 'all'}
        ``val``: the validation span (known outcomes); ``test``: after the validation span, up to the
        latest bar; ``all``: every bar with a full encoder history.
    data : WindowData, optional
        Reuse already built windows (they must use the module's scalers).
    log_dir : path, optional
        An existing Lightning log dir (``.../tft/version_N``) to write into; default a new version
        under the leaf's log root.
    table : DataFrame, optional
        The leaf's data table, if already loaded (else read from the configured path).
    label : str, optional
        Value of the ``split`` column (default ``split``; walk-forward blocks use ``oof``).
    """
    if split not in SPLIT_ROWS:
        raise ConfigError(f"--split {split!r}: use one of {list(SPLIT_ROWS)}")
    data = checkpoint_data(module, leaf, table) if data is None else data
    rows = data.splits[SPLIT_ROWS[split]]
    if rows.size == 0:
        raise DataError(f"{leaf.config_path}: the {split} span of {leaf.model.data.path} has no window to predict")
    if log_dir is None:
        tb = TensorBoardLogger(save_dir=str(leaf.log_dir.parent), name=leaf.log_dir.name)
    else:
        log_dir = Path(log_dir)
        tb = TensorBoardLogger(save_dir=str(log_dir.parent.parent), name=log_dir.parent.name, version=log_dir.name)
    writer = PredictionWriter(label or split)
    trainer = L.Trainer(accelerator=leaf.model.trainer.accelerator, devices=1, precision=precision_for(leaf),
                        logger=tb, enable_progress_bar=True, use_distributed_sampler=False, enable_model_summary=False,
                        callbacks=[ReleaseFreedMemory(), writer])
    loader = make_loader(data, SPLIT_ROWS[split], leaf.model.training.batch_size, False)
    with warnings.catch_warnings():
        # the writer keeps batches in loader order and needs no sample indices, which our batch sampler does not give
        warnings.filterwarnings("ignore", message="Couldn't infer the batch indices")
        trainer.predict(module, loader, return_predictions=False)
    out = writer.outputs
    if not out:
        raise DataError(f"{leaf.config_path}: prediction produced no output")
    logger.info("%s %s: predictions %s, eval report %s", leaf.model.expert, split, out["predictions"],
                out["eval_report"])
    return PredictResult(out["predictions"], out["eval_report"], int(rows.size) * len(module.target_names),
                         str(checkpoint))
