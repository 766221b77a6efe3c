import numpy as np
import pandas as pd
import pytest

from src.indicating import KEY_COLUMNS, NORM_WINDOW, compute_features, indicating_main
from tests.conftest import make_bars
from utils.errors import DataError


@pytest.fixture(scope="module")
def base():
    return make_bars(700, seed=5)


@pytest.fixture(scope="module")
def feats(base):
    return compute_features(base)


def _perturb_after(bars, t, seed=0):
    """Scramble every bar after row t (prices rescaled consistently, volumes shuffled)."""
    rng = np.random.default_rng(seed)
    out = bars.copy()
    tail = slice(t + 1, None)
    scale = np.exp(rng.normal(0, 0.2, len(out) - t - 1))
    for col in ("open", "high", "low", "close", "quote_volume"):
        out.loc[out.index[tail], col] = out[col].to_numpy()[tail] * scale
    out.loc[out.index[tail], "volume"] = rng.permutation(out["volume"].to_numpy()[tail]) * 3
    out.loc[out.index[tail], "count"] = rng.integers(1, 10_000, len(out) - t - 1)
    out.loc[out.index[tail], "taker_buy_volume"] = out["volume"].to_numpy()[tail] * 0.9
    return out


@pytest.mark.parametrize("t", [60, 299, 650])
def test_no_feature_depends_on_later_rows(base, feats, t):
    """Leakage: perturbing rows after t leaves every feature column at rows <= t unchanged."""
    changed = compute_features(_perturb_after(base, t))
    assert list(changed.columns) == list(feats.columns)
    pd.testing.assert_frame_equal(changed.iloc[: t + 1], feats.iloc[: t + 1], check_exact=False, rtol=1e-12)
    # the perturbation is real: later rows did change
    assert not np.allclose(changed.iloc[t + 1:]["rsi_14"], feats.iloc[t + 1:]["rsi_14"], equal_nan=True)


def test_normalized_columns_use_only_strictly_earlier_bars(base, feats):
    t = 400
    bumped = base.copy()
    for col in ("open", "high", "low", "close"):
        bumped.loc[t, col] = base.loc[t, col] * 1.3
    bumped.loc[t, "volume"] = base.loc[t, "volume"] * 5
    after = compute_features(bumped)
    norm = [c for c in feats.columns if c.endswith((f"_zn{NORM_WINDOW}", f"_mm{NORM_WINDOW}"))]
    assert len(norm) == 2 * len(KEY_COLUMNS)
    pd.testing.assert_frame_equal(after.loc[t, norm].to_frame(), feats.loc[t, norm].to_frame())
    assert not np.isclose(after.loc[t + 1, "close_zn48"], feats.loc[t + 1, "close_zn48"])


def test_feature_set_size_and_no_chikou(feats):
    assert feats.shape[1] >= 150
    assert not [c for c in feats.columns if "chikou" in c]
    assert np.isfinite(feats.iloc[300:].drop(columns=["cdl_doji"]).to_numpy(dtype=float)[:, :20]).all()


def test_inputs_are_not_mutated(base):
    before = base.copy()
    compute_features(base)
    pd.testing.assert_frame_equal(base, before)


def test_normalizations_match_their_definition(base, feats):
    rsi_prev = feats["rsi_14"].shift(1)
    z = (rsi_prev - rsi_prev.rolling(48).mean()) / rsi_prev.rolling(48).std()
    mm = (rsi_prev - rsi_prev.rolling(48).min()) / (rsi_prev.rolling(48).max() - rsi_prev.rolling(48).min())
    np.testing.assert_allclose(feats["rsi_14_zn48"].iloc[200:], z.iloc[200:], rtol=1e-9)
    np.testing.assert_allclose(feats["rsi_14_mm48"].iloc[200:], mm.iloc[200:], rtol=1e-9)


def test_pivots_come_from_previous_day(base, feats):
    day = base["timestamp"].dt.floor("D")
    d2 = base[day == day.unique()[2]]
    prev = base[day == day.unique()[1]]
    p = (prev["high"].max() + prev["low"].min() + prev["close"].iloc[-1]) / 3
    np.testing.assert_allclose(feats.loc[d2.index, "pivot_p_dist"], d2["close"] / p - 1)
    assert feats.loc[base.index[day == day.unique()[0]], "pivot_p_dist"].isna().all()


def test_without_optional_columns(base):
    plain = base[["timestamp", "open", "high", "low", "close", "volume"]]
    out = compute_features(plain)
    # columns that need taker volume or trade counts are not emitted at all (never all-NaN columns)
    absent = {"taker_buy_ratio", "taker_buy_ratio_zn48", "taker_buy_ratio_mm48", "avg_trade_size_ratio_48"}
    assert not absent & set(out.columns) and out["vwap_dist_24"].notna().sum() > 600
    assert absent <= set(compute_features(base).columns)


def test_daily_bars_have_no_hour_features(base):
    daily = make_bars(300, freq="1D")
    assert not {"hour_sin", "hour_cos"} & set(compute_features(daily, intraday=False).columns)
    assert {"weekday_sin", "hour_sin"} <= set(indicating_main("1h", {"A": base}).columns)
    assert "hour_sin" not in indicating_main("1d", {"A": daily}).columns


def test_segments_warm_up_after_a_gap(base):
    """Features of a new segment only use its own bars: the first bar after the hole has no 1-bar return."""
    seg = base.assign(segment=(base.index >= 400).astype(int))
    out = indicating_main("1h", {"A": seg})
    assert "segment" not in out.columns
    assert np.isnan(out.loc[400, "ret_1"]) and np.isnan(out.loc[400 + 13, "rsi_14"])
    assert np.isfinite(out.loc[400 + 30, "rsi_14"])
    # the first segment is what the bars alone give
    alone = indicating_main("1h", {"A": base.iloc[:400]})
    pd.testing.assert_frame_equal(out.iloc[:400].drop(columns=[]), alone, check_dtype=False)


def test_indicating_main_builds_long_panel(base):
    panel = indicating_main("1h", {"B": base, "A": make_bars(100, seed=9)})
    assert list(panel.columns[:3]) == ["symbol", "period", "timestamp"]
    assert panel["symbol"].tolist()[0] == "A" and (panel["period"] == "1h").all() and len(panel) == 800


def test_errors():
    with pytest.raises(DataError, match=r"lack column\(s\) \['volume'\]"):
        compute_features(make_bars(10).drop(columns=["volume"]))
    with pytest.raises(DataError, match=r"no bars to compute 4h indicators"):
        indicating_main("4h", {})
