import os
import stat

import pandas as pd
import pytest

from utils.io import atomic_path, read_csv_fast, write_csv, write_json, write_parquet


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temp file left behind


def test_round_trip_and_permissions(tmp_path):
    df = pd.DataFrame({"a": [1.5, float("nan")], "t": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True)})
    csv = write_csv(df, tmp_path / "sub" / "x.csv")
    back = read_csv_fast(csv)
    assert back["a"].iloc[0] == 1.5 and pd.isna(back["a"].iloc[1])
    empty = write_csv(pd.DataFrame({"e": [float("nan")] * 2}), tmp_path / "e.csv")
    assert read_csv_fast(empty)["e"].dtype == "float64"  # all-empty column stays numeric
    pq = write_parquet(df, tmp_path / "x.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(pq), df)
    mode = stat.S_IMODE(os.stat(write_json({"k": 1}, tmp_path / "x.json")).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
