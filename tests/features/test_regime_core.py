import numpy as np
import pandas as pd
import pytest

from features.regime_core import REGIME_COLUMNS, RegimeWindows, regime_features
from tests.conftest import make_bars

W = RegimeWindows(vol=10, pct=40, momentum=8, atr=5, slope=6, structure=12)


@pytest.fixture
def panel():
    parts = []
    for i, sym in enumerate(["AAA", "BBB"]):
        b = make_bars(300, seed=i).assign(symbol=sym, period="1h")
        b["funding_rate"] = np.random.default_rng(i).normal(0, 1e-4, len(b))
        b["oi_value"] = 1e6 * np.exp(np.cumsum(np.random.default_rng(10 + i).normal(0, 0.01, len(b))))
        parts.append(b)
    # shuffled rows: the function must not depend on input order
    return pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=0)


def test_columns_index_and_purity(panel):
    before = panel.copy()
    out = regime_features(panel, W)
    pd.testing.assert_frame_equal(panel, before)  # input untouched
    assert out.index.equals(panel.index) and list(out.columns[-len(REGIME_COLUMNS):]) == REGIME_COLUMNS
    late = out[out.groupby(["symbol"])["timestamp"].rank() > 60]
    assert late[REGIME_COLUMNS].notna().all().all()
    assert (late["regime_gap_high"] <= 1e-12).all() and (late["regime_gap_low"] >= -1e-12).all()
    assert late["regime_vol_pct"].between(0, 1).all()


def test_values_match_a_direct_computation(panel):
    out = regime_features(panel, W)
    a = panel[panel["symbol"] == "AAA"].sort_values("timestamp")
    ret = np.log(a["close"]).diff()
    vol = ret.rolling(W.vol).std().shift(1)
    mom = (np.log(a["close"]) - np.log(a["close"]).shift(W.momentum)).shift(1)
    got = out.loc[a.index]
    np.testing.assert_allclose(got["regime_vol_level"], vol, equal_nan=True, rtol=1e-9)
    np.testing.assert_allclose(got["regime_momentum"], mom, equal_nan=True, rtol=1e-9)


def test_changing_future_rows_leaves_past_unchanged(panel):
    base = regime_features(panel, W)
    cut = panel["timestamp"].sort_values().unique()[200]
    changed = panel.copy()
    future = changed["timestamp"] >= cut
    for col in ("open", "high", "low", "close", "volume", "funding_rate", "oi_value"):
        changed.loc[future, col] = changed.loc[future, col] * 3.0
    again = regime_features(changed, W)
    past = panel["timestamp"] <= cut  # shifted by one bar: even bar `cut` itself is unchanged
    pd.testing.assert_frame_equal(base[past], again[past])
    assert not base[~past].equals(again[~past])


def test_missing_fundamentals_give_nan_columns(panel):
    out = regime_features(panel.drop(columns=["funding_rate", "oi_value"]), W)
    assert out["regime_funding_slope"].isna().all() and out["regime_oi_slope"].isna().all()
    assert out["regime_momentum"].notna().any()
