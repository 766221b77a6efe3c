"""The partitioned panel: one parquet file per (period, symbol), read back by projection."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from utils.errors import DataError
from utils.partitioned import (
    is_partitioned,
    iter_partitions,
    iter_tables,
    partition_path,
    read_partitioned,
    unified_schema,
    write_meta,
    write_partition,
)


def _part(symbol, period, n, seed, taker=True):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"symbol": symbol, "period": period,
                          "timestamp": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
                          "close": rng.normal(100, 1, n), "ret_1": rng.normal(0, 1, n).astype(np.float32)})
    if taker:
        frame["taker_ratio"] = rng.uniform(size=n).astype(np.float32)
    frame["target_binarytrend"] = rng.integers(0, 2, n).astype(float)
    return frame


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "panel"
    parts = [("1h", "AAA", _part("AAA", "1h", 5, 0)), ("1h", "BBB", _part("BBB", "1h", 4, 1, taker=False)),
             ("4h", "AAA", _part("AAA", "4h", 3, 2))]
    for period, symbol, frame in parts:
        write_partition(frame, root, period, symbol)
    write_meta(root, [(p, s) for p, s, _ in parts], ["symbol", "period", "timestamp", "close", "ret_1",
                                                    "taker_ratio", "target_binarytrend"], 12)
    return root, {(p, s): f for p, s, f in parts}


def test_layout_and_full_read(dataset):
    root, parts = dataset
    assert is_partitioned(root) and not is_partitioned(root / "period=1h")
    path = partition_path(root, "1h", "AAA")
    assert path.is_file() and path.relative_to(root).parts[:2] == ("period=1h", "symbol=AAA")
    assert "symbol" not in pq.read_schema(path).names  # the key lives in the folder name only
    panel = read_partitioned(root)
    assert list(panel.columns[:2]) == ["symbol", "period"] and len(panel) == 12
    assert list(zip(panel["period"], panel["symbol"], strict=True))[:6] == [("1h", "AAA")] * 5 + [("1h", "BBB")]
    assert panel["ret_1"].dtype == np.float32 and panel["close"].dtype == np.float64
    # BBB has no taker column: NaN there, as a concatenated panel would have
    assert panel.loc[panel.symbol == "BBB", "taker_ratio"].isna().all()
    got = panel[(panel.symbol == "AAA") & (panel.period == "4h")].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, parts[("4h", "AAA")][got.columns].reset_index(drop=True))


def test_projection_reads_only_what_is_asked(dataset):
    root, _ = dataset
    one = read_partitioned(root, periods=["4h"], columns=["timestamp", "ret_1"])
    assert list(one.columns) == ["symbol", "period", "timestamp", "ret_1"] and len(one) == 3
    both = read_partitioned(root, periods=["4h", "1h"], symbols=["AAA"])
    assert list(both["period"].unique()) == ["4h", "1h"]  # periods keep the order asked for
    assert [len(f) for f in iter_partitions(root, symbols=["BBB"])] == [4]


def test_bad_requests_fail_clearly(dataset, tmp_path):
    root, _ = dataset
    with pytest.raises(DataError, match=r"column\(s\) \['nope'\] are not in the panel"):
        read_partitioned(root, columns=["nope"])
    with pytest.raises(DataError, match="no partition for periods"):
        read_partitioned(root, periods=["1d"])
    with pytest.raises(DataError, match="not a partitioned panel"):
        read_partitioned(tmp_path / "elsewhere")
    (root / "_dataset.json").write_text("{not json")
    with pytest.raises(DataError, match=r"_dataset\.json: unreadable .*rebuild the panel"):
        read_partitioned(root)


def test_tables_share_one_schema(dataset):
    root, _ = dataset
    schema = unified_schema(root)
    assert schema.names[:2] == ["symbol", "period"] and str(schema.field("taker_ratio").type) == "float"
    tables = list(iter_tables(root, schema))
    assert [t.num_rows for t in tables] == [5, 4, 3] and all(t.schema.equals(schema) for t in tables)
    assert tables[1].column("taker_ratio").null_count == 4
