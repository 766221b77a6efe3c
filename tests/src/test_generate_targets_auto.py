import numpy as np
import pandas as pd
import pytest

from src.generate_targets_auto import convert_selected_periods_to_csv, make_targets
from src.market_calendar import assign_time_idx
from tests.conftest import make_bars
from utils.errors import DataError
from utils.timeline import horizon_of, target_name


def _panel(bars, symbol="A"):
    return assign_time_idx(bars.assign(symbol=symbol), pd.Timedelta("1h"), "24/7")


def test_hand_checked_values():
    close = np.array([100.0, 110.0, 99.0, 120.0, 121.0])
    bars = make_bars(5).assign(close=close)
    t = make_targets(_panel(bars), horizons=[1, 2])
    np.testing.assert_allclose(t["target_logreturn"].iloc[:4], np.log(close[1:] / close[:-1]))
    assert t["target_binarytrend"].tolist()[:4] == [1.0, 0.0, 1.0, 1.0]
    r = np.diff(np.log(close))
    assert t["target_vol_h2"].iloc[0] == pytest.approx(np.sqrt(r[0] ** 2 + r[1] ** 2))
    assert t["target_drawdown_h2"].iloc[0] == pytest.approx(99 / 110 - 1)
    assert t["target_drawdown_h2"].iloc[2] == 0.0
    assert t["target_logreturn_h2"].iloc[3:].isna().all() and np.isnan(t["target_binarytrend"].iloc[4])


def test_drawdown_matches_brute_force():
    bars = make_bars(200, seed=4)
    t = make_targets(_panel(bars), horizons=[7])
    c = bars["close"].to_numpy()
    brute = [min(c[i + k] / c[i:i + k + 1].max() - 1 for k in range(8)) for i in range(193)]
    np.testing.assert_allclose(t["target_drawdown_h7"].iloc[:193], brute)


def test_nan_over_gaps_and_symbol_boundaries():
    a = make_bars(30, seed=1).drop(index=[10]).reset_index(drop=True)
    panel = pd.concat([_panel(a, "A"), _panel(make_bars(30, seed=2), "B")], ignore_index=True)
    t = make_targets(panel, horizons=[1, 4])
    # row 9 of A is the last bar before the missing one: every horizon would cross the gap
    assert t.loc[9, ["target_logreturn", "target_logreturn_h4"]].isna().all()
    assert t.loc[5, "target_logreturn_h4"] == pytest.approx(np.log(a["close"][9] / a["close"][5]))
    assert np.isnan(t.loc[6, "target_logreturn_h4"])  # 6 -> 10 would cross the gap
    last_a = len(a) - 1
    assert t.loc[last_a - 3:last_a, "target_logreturn_h4"].isna().all()  # never uses symbol B's rows
    assert t.loc[last_a, "target_logreturn"] != t.loc[last_a, "target_logreturn"]


def test_targets_depend_only_on_rows_after_t():
    bars = make_bars(120, seed=8)
    base = make_targets(_panel(bars), horizons=[4])
    later = bars.copy()
    later.loc[80:, "close"] *= 1.5
    changed = make_targets(_panel(later), horizons=[4])
    # rows whose horizon ends before the change are untouched; rows reaching into it change
    pd.testing.assert_frame_equal(changed.iloc[:76], base.iloc[:76])
    assert not np.isclose(changed["target_logreturn_h4"].iloc[78], base["target_logreturn_h4"].iloc[78])


def test_convert_writes_one_csv_per_symbol(tmp_path):
    panel = pd.concat([_panel(make_bars(50, seed=1), "A"), _panel(make_bars(40, seed=2), "B")], ignore_index=True)
    out = convert_selected_periods_to_csv(["1h"], {"1h": panel}, tmp_path, horizons=[1])
    assert sorted(p.name for p in (tmp_path / "1h").iterdir()) == ["A_1h.csv", "B_1h.csv"]
    assert "target_binarytrend" in out["1h"]
    with pytest.raises(DataError, match=r"period '4h' has no indicated panel"):
        convert_selected_periods_to_csv(["4h"], {"1h": panel}, tmp_path)


def test_bad_inputs():
    with pytest.raises(DataError, match="unknown target kind 'alpha'"):
        target_name("alpha", 1)
    with pytest.raises(DataError, match=r"lacks column\(s\) \['time_idx', 'gap_before'\]"):
        make_targets(make_bars(5).assign(symbol="A"))
    with pytest.raises(DataError, match=r"horizons must be >= 1"):
        make_targets(_panel(make_bars(5)), horizons=[0])


def test_horizon_of_inverts_target_name():
    for kind in ("logreturn", "binarytrend", "vol", "drawdown"):
        for h in (1, 4, 24):
            assert horizon_of(target_name(kind, h)) == h


def test_a_series_no_longer_than_the_horizon_has_no_labels():
    """A build works one symbol at a time: a short symbol must give NaN targets, not an error."""
    panel = make_bars(5).assign(symbol="A", time_idx=np.arange(5), gap_before=False)
    out = make_targets(panel, horizons=[1, 5, 24])
    assert out["target_logreturn_h24"].isna().all() and out["target_binarytrend_h5"].isna().all()
    assert out["target_logreturn"].notna().sum() == 4
