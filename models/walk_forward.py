"""Walk-forward out-of-fold predictions of one leaf (``scripts/experts_cli.py oof``).

:func:`walk_forward_windows` lays ``n_windows`` consecutive out-of-fold (OOF) blocks of ``oof_days``
backwards from the end of the data. Window ``k``:

* trains on decision bars before ``train_end_k`` whose labels also end before it (the window
  dataset purges by the longest horizon), from the data start or the last ``train_days``;
* validates (early stopping, temperature fit) on ``[train_end_k + embargo, val_end_k)``, labels inside;
* predicts only its OOF block ``[val_end_k + embargo, oof_end_k)``, which is after all its training
  and validation labels; rows are tagged ``split='oof'`` and ``train_window_id='wfKK_<start>-<end>'``.

Each window is an ordinary training run (:func:`models.training.run`) of a copy of the leaf with the window's
split dates, window id and run tag (:meth:`Window.apply`: typed, no ``--set`` strings), in its own log /
checkpoint folder (``tft/wfKK``). The embargo follows the timeline's rule (:func:`utils.timeline.embargo_bars`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from models.baseline_runs import run_baseline
from models.baselines import check_model
from models.leaf_config import Leaf, load_leaf
from models.leaf_data import LeafTable
from models.prediction import PredictResult, load_expert, predict
from models.training import run
from utils.errors import ConfigError
from utils.timeline import embargo_bars, period_delta

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """One walk-forward window; all bounds are UTC timestamps, end-exclusive."""

    index: int
    train_start: pd.Timestamp | None
    train_end: pd.Timestamp
    val_end: pd.Timestamp
    oof_start: pd.Timestamp
    oof_end: pd.Timestamp

    @property
    def tag(self) -> str:
        """Run tag (folder name)."""
        return f"wf{self.index:02d}"

    @property
    def window_id(self) -> str:
        """``train_window_id`` of its predictions: ``wfKK_<train start>-<train end>``."""
        start = f"{self.train_start:%Y%m%dT%H%M}" if self.train_start is not None else "start"
        return f"{self.tag}_{start}-{self.train_end:%Y%m%dT%H%M}"

    def apply(self, leaf: Leaf) -> Leaf:
        """``leaf`` trained on this window: its split dates, its own run folder and window id (a new Leaf)."""
        m = leaf.model
        split = dataclasses.replace(m.split, train_end=self.train_end.isoformat(), val_end=self.val_end.isoformat(),
                                    test_end=self.oof_end.isoformat(),
                                    train_start=None if self.train_start is None else self.train_start.isoformat())
        meta = dataclasses.replace(m.meta, train_window_id=self.window_id)
        return dataclasses.replace(leaf, model=dataclasses.replace(m, split=split, meta=meta), run_tag=self.tag)


def walk_forward_windows(first: pd.Timestamp, last: pd.Timestamp, period: str, n_windows: int, val_days: int,
                         oof_days: int, embargo_bars: int, train_days: int | None = None) -> list[Window]:
    """Lay out the windows for bars from ``first`` to ``last`` (decision-bar timestamps).

    Raises
    ------
    ConfigError
        When the blocks do not leave a training span of at least ``val_days``.
    """
    step = period_delta(period)
    embargo = step * embargo_bars
    end = pd.Timestamp(last) + step
    oof, val = pd.Timedelta(days=oof_days), pd.Timedelta(days=val_days)
    windows = []
    for k in range(n_windows):
        oof_start = end - oof * (n_windows - k)
        val_end = oof_start - embargo
        train_end = val_end - val - embargo
        train_start = train_end - pd.Timedelta(days=train_days) if train_days else None
        windows.append(Window(k, train_start, train_end, val_end, oof_start, oof_start + oof))
    if windows[0].train_end - pd.Timestamp(first) < val:
        raise ConfigError(f"key 'walk_forward' = {n_windows} windows x {oof_days} OOF days + {val_days} val days: "
                          f"leaves {windows[0].train_end - pd.Timestamp(first)} of training data before the first "
                          f"window (data {first} .. {last}); use fewer or shorter windows")
    return windows


def leaf_windows(leaf: Leaf, table: pd.DataFrame | LeafTable) -> list[Window]:
    """The windows of ``leaf`` for its table (its period's rows)."""
    wf = leaf.model.walk_forward
    horizon = max(t.horizon for t in leaf.targets.targets)
    bars = embargo_bars(wf.embargo_bars, horizon, f"{leaf.config_path}: walk_forward")
    table = table.frame if isinstance(table, LeafTable) else table
    ts = table.loc[table["period"] == leaf.model.period, "timestamp"]
    if ts.empty:
        raise ConfigError(f"{leaf.config_path}: no {leaf.model.period} rows in {leaf.model.data.path}")
    return walk_forward_windows(ts.min(), ts.max(), leaf.model.period, wf.n_windows, wf.val_days, wf.oof_days, bars,
                                wf.train_days)


def run_walk_forward(config: str | Path, overrides: list[str] | None = None,
                     wait: bool = True, model: str = "tft") -> list[PredictResult]:
    """Train every window of a leaf and write its OOF predictions; returns one result per window.

    ``model`` is ``tft`` or a baseline (:data:`models.baselines.BASELINE_MODELS`), fit on each window's rows
    exactly as the TFT is. The model's checkpoint folder of the leaf is locked for the whole walk-forward (one
    writer; ``wait=False`` stops).
    """
    from utils.locks import output_lock

    base = load_leaf(config, overrides)
    if model != "tft":
        check_model(model)
    with output_lock(base.model_ckpt_dir(model), wait, f"walk-forward run of this leaf ({model})"):
        return _windows(base, model, wait)


def _windows(base: Leaf, model: str = "tft", wait: bool = True) -> list[PredictResult]:
    table = LeafTable.read(base)  # shared by the windows
    results = []
    for win in leaf_windows(base, table):
        leaf = win.apply(base)
        logger.info("walk-forward %s (%s): train < %s, val < %s, OOF [%s, %s)", win.tag, model, win.train_end,
                    win.val_end, win.oof_start, win.oof_end)
        if model != "tft":
            results += run_baseline(leaf, model, ("test",), table, label="oof", wait=wait)
            continue
        result = run(leaf, table=table)
        module, ck_leaf = load_expert(result.best_model_path or result.last_model_path)
        results.append(predict(module, ck_leaf, "test", log_dir=result.log_dir, table=table, label="oof",
                               checkpoint=result.best_model_path))
    return results

