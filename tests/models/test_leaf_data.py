"""A leaf reads only its period and usable columns, from a parquet file or a partitioned dataset alike."""

import shutil

import numpy as np
import pandas as pd

from models.leaf_config import load_leaf
from models.leaf_data import LeafTable, data_source, read_table
from models.training import run
from models.window_dataset import build_window_data
from tests.models.conftest import write_leaf
from utils.partitioned import partition_path, write_partition


def test_projection_reads_the_leaf_period_and_columns_only(leaf_path):
    leaf = load_leaf(leaf_path)
    whole = pd.read_parquet(leaf.model.data.path)
    got = read_table(leaf.model.data.path, leaf)
    assert set(got["period"]) == {"1h"} and len(got) == int((whole["period"] == "1h").sum())
    assert {"ret_1", "rsi_14", "close", "time_idx", "gap_before", "target_logreturn_h4"} <= set(got.columns)
    assert "rsi_6" not in got.columns and got.shape[1] < whole.shape[1] / 4  # not a view of the wide table


def test_partitioned_dataset_gives_the_same_windows_as_the_single_file(leaf_path, small_panel, tmp_path):
    single = load_leaf(leaf_path)
    dataset = small_panel["base_csv"].with_suffix("")  # the build's merged/full_merged/period=/symbol=/
    parted = load_leaf(write_leaf(tmp_path / "p", dataset))
    assert data_source(dataset) == dataset
    a, b = build_window_data(single), build_window_data(parted)
    assert a.features == b.features and a.categories == b.categories
    for name in a.splits:
        np.testing.assert_array_equal(a.splits[name], b.splits[name])
    np.testing.assert_allclose(a.x.numpy(), b.x.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(a.y.numpy(), b.y.numpy())


def test_training_runs_on_a_dataset_without_its_single_file_export(small_panel, tmp_path, monkeypatch):
    """``data.path: .../X.parquet`` reads ``.../X/`` when only the partitioned dataset was written."""
    monkeypatch.chdir(tmp_path)
    dataset = small_panel["base_csv"].with_suffix("")
    link = tmp_path / "panel.parquet"
    assert not link.exists()
    (tmp_path / "panel").symlink_to(dataset, target_is_directory=True)
    leaf = load_leaf(write_leaf(tmp_path, link))
    assert data_source(link) == tmp_path / "panel"
    result = run(leaf)
    assert result.best_score is not None and (leaf.ckpt_dir / "last.ckpt").is_file()


def test_a_dataset_leaf_holds_only_its_narrow_columns_and_reads_inputs_in_training_order(small_panel, tmp_path):
    """From a dataset, the rows in memory are ids, close and targets; the inputs go straight into one float32
    array, in the same order as the whole table read in memory, even from a partition whose rows are unsorted."""
    dataset = tmp_path / "ds"
    shutil.copytree(small_panel["base_csv"].with_suffix(""), dataset)
    leaf = load_leaf(write_leaf(tmp_path / "p", dataset))
    path = partition_path(dataset, "1h", "BTCUSDT")
    part = pd.read_parquet(path)
    write_partition(part.sample(frac=1.0, random_state=0), dataset, "1h", "BTCUSDT")  # rows out of time order
    lean, whole = LeafTable.read(leaf), LeafTable.of(leaf, read_table(dataset, leaf))
    targets = {t.name for t in leaf.targets.targets}
    assert set(lean.frame.columns) <= {"symbol", "period", "timestamp", "time_idx", "gap_before", "close"} | targets
    for key in ("symbol", "period"):  # codes, not a string per row
        assert isinstance(lean.frame[key].dtype, pd.CategoricalDtype)
        np.testing.assert_array_equal(lean.frame[key].astype(str), whole.frame[key].astype(str))
    rest = [c for c in lean.frame.columns if c not in ("symbol", "period")]
    pd.testing.assert_frame_equal(lean.frame[rest], whole.frame[rest])
    features = lean.numeric(targets)
    assert features == whole.numeric(targets) and "rsi_14" in features
    x = lean.inputs(features)
    assert x.dtype == np.float32 and x.shape == (len(whole.frame), len(features))
    np.testing.assert_array_equal(x, whole.inputs(features))
    for table in (lean, whole):  # room for derived inputs behind the read ones, from partitions and from a frame
        wide = table.inputs(features, extra=2)
        assert wide.shape == (len(whole.frame), len(features) + 2)
        np.testing.assert_array_equal(wide[:, :len(features)], x)
    rows = np.arange(0, len(x), 7)
    pd.testing.assert_frame_equal(lean.fit_frame(["rsi_14"], rows, ["BTCUSDT"]).reset_index(drop=True),
                                  whole.fit_frame(["rsi_14"], rows, ["BTCUSDT"]).reset_index(drop=True))


def test_a_dataset_leaf_without_rows_of_its_symbols_is_a_data_error(small_panel, tmp_path):
    import pytest

    from utils.errors import DataError

    leaf = load_leaf(write_leaf(tmp_path / "p", small_panel["base_csv"].with_suffix("")), ["data.symbols=[NOPEUSDT]"])
    with pytest.raises(DataError, match="no 1h rows in"):
        LeafTable.read(leaf)
