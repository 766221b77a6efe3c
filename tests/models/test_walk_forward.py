import numpy as np
import pandas as pd
import pytest

from models.leaf_config import load_leaf
from models.walk_forward import leaf_windows, walk_forward_windows
from models.window_dataset import build_window_data, read_table
from scripts import experts_cli
from utils.errors import ConfigError

WF = ["walk_forward.n_windows=2", "walk_forward.val_days=5", "walk_forward.oof_days=7"]


def _intervals(data, rows, h):
    ts = data.timestamp[rows]
    return ts, ts + pd.Timedelta(hours=h).value


def test_no_training_label_interval_meets_an_evaluation_one(leaf_path):
    """Property, for every walk-forward window: train labels < val labels < OOF labels, OOF inside its block."""
    leaf = load_leaf(leaf_path, WF)
    table = read_table(leaf.model.data.path)
    h = max(t.horizon for t in leaf.targets.targets)
    windows = leaf_windows(leaf, table)
    assert len(windows) == 2 and windows[0].oof_end == windows[1].oof_start
    for win in windows:
        data = build_window_data(win.apply(leaf), table)
        tr_start, tr_end = _intervals(data, data.splits["train"], h)
        va_start, va_end = _intervals(data, data.splits["val"], h)
        oof_start, _ = _intervals(data, data.splits["predict_test"], h)
        assert tr_end.max() < va_start.min() and va_end.max() < oof_start.min()
        assert tr_end.max() < oof_start.min()
        assert oof_start.min() >= win.oof_start.value and oof_start.max() < win.oof_end.value


def test_window_layout_errors(leaf_path):
    first, last = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-03-01", tz="UTC")
    with pytest.raises(ConfigError, match="key 'walk_forward' = 5 windows x 30 OOF days"):
        walk_forward_windows(first, last, "1h", 5, 10, 30, 4)
    wins = walk_forward_windows(first, last, "1h", 2, 5, 7, 4, train_days=20)
    assert wins[0].train_start == wins[0].train_end - pd.Timedelta(days=20)
    leaf = wins[0].apply(load_leaf(leaf_path))
    assert leaf.model.split.train_start == wins[0].train_start.isoformat() and leaf.run_tag == "wf00"
    assert leaf.model.meta.train_window_id.startswith("wf00_")


def test_oof_command_writes_tagged_out_of_fold_predictions(leaf_path):
    sets = [f"--set={s}" for s in WF]
    assert experts_cli.main(["oof", "--expert", "Test-TFT", "--leaf", "1h/base", *sets]) == 0
    leaf = load_leaf(leaf_path, WF)
    files = sorted(leaf.log_dir.glob("wf*/version_*/predictions/predictions_*.parquet"))
    frames = [pd.read_parquet(f) for f in files]
    oof = pd.concat([f for f in frames if (f["split"] == "oof").all()])
    assert set(oof["train_window_id"].str[:4]) == {"wf00", "wf01"}
    windows = leaf_windows(leaf, read_table(leaf.model.data.path))
    for win in windows:
        part = oof[oof["train_window_id"].str.startswith(win.tag)]
        assert part["timestamp"].min() >= win.oof_start and part["timestamp"].max() < win.oof_end
    assert not oof.duplicated(["symbol", "period", "time_idx", "target"]).any()
    assert np.isfinite(oof["score"]).all()
