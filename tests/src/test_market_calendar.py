import numpy as np
import pandas as pd
import pytest

from src.market_calendar import assign_time_idx, detect_calendar, horizon_valid
from tests.conftest import make_bars
from utils.errors import DataError


def _panel(*frames):
    return pd.concat([f.assign(symbol=s) for s, f in frames], ignore_index=True)


def test_detect_calendar():
    assert detect_calendar(make_bars(500)["timestamp"]) == "24/7"
    assert detect_calendar(make_bars(300, freq="1D", weekdays_only=True)["timestamp"]) == "session"
    with pytest.raises(DataError, match="empty"):
        detect_calendar(pd.Series([], dtype="datetime64[ns, UTC]"))


def test_crypto_missing_bar_is_a_jump_and_a_gap():
    bars = make_bars(10).drop(index=[4]).reset_index(drop=True)
    out = assign_time_idx(_panel(("A", bars)), pd.Timedelta("1h"), "24/7")
    diffs = out["time_idx"].diff().iloc[1:].to_numpy()
    assert list(diffs) == [1, 1, 1, 2, 1, 1, 1, 1]
    assert out["gap_before"].tolist() == [False] * 4 + [True] + [False] * 4
    assert out["time_idx"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC").value // 3_600_000_000_000


def test_session_weekends_are_consecutive_but_long_closure_is_a_gap():
    days = make_bars(60, freq="1D", weekdays_only=True)
    assert (days["timestamp"].diff().dt.days.max()) == 3  # weekends present in the calendar
    out = assign_time_idx(_panel(("A", days)), pd.Timedelta("1D"), "session")
    assert (out["time_idx"].diff().iloc[1:] == 1).all() and not out["gap_before"].any()
    closed = days.drop(index=range(10, 14)).reset_index(drop=True)  # a 6-day closure
    out2 = assign_time_idx(_panel(("A", closed)), pd.Timedelta("1D"), "session")
    assert out2["gap_before"].sum() == 1


def test_session_symbol_missing_a_day_others_traded_is_a_gap():
    a = make_bars(30, freq="1D", weekdays_only=True, seed=1)
    b = a.drop(index=[7]).reset_index(drop=True)
    out = assign_time_idx(_panel(("A", a), ("B", b)), pd.Timedelta("1D"), "session")
    assert out.loc[out.symbol == "A", "gap_before"].sum() == 0
    assert out.loc[out.symbol == "B", "gap_before"].sum() == 1


def test_unknown_calendar():
    with pytest.raises(DataError, match="unknown calendar 'moon'"):
        assign_time_idx(_panel(("A", make_bars(5))), pd.Timedelta("1h"), "moon")


def test_horizon_valid_stops_at_gaps_symbol_ends_and_data_end():
    tidx = np.array([0, 1, 2, 4, 5, 0, 1, 2])
    gaps = np.array([0, 0, 0, 1, 0, 0, 0, 0], dtype=bool)
    codes = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    assert horizon_valid(tidx, gaps, codes, 1).tolist() == [1, 1, 0, 1, 0, 1, 1, 0]
    assert horizon_valid(tidx, gaps, codes, 2).tolist() == [1, 0, 0, 0, 0, 1, 0, 0]
