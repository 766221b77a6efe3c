"""Agreement with TA-Lib (the test oracle) to a relative 1e-6 after warm-up."""

import numpy as np
import pytest

from src import indicators as ind
from tests.conftest import make_bars

talib = pytest.importorskip("talib")
WARMUP = 300


@pytest.fixture(scope="module")
def hlcv():
    b = make_bars(3000, seed=3)
    return tuple(b[k].to_numpy(dtype=np.float64) for k in ("high", "low", "close", "volume"))


CASES = {
    "RSI": (lambda h, lo, c, v: ind.rsi(c, 14), lambda h, lo, c, v: talib.RSI(c, 14)),
    "ATR": (lambda h, lo, c, v: ind.atr(h, lo, c, 14), lambda h, lo, c, v: talib.ATR(h, lo, c, 14)),
    "MACD": (lambda h, lo, c, v: np.stack(ind.macd(c)), lambda h, lo, c, v: np.stack(talib.MACD(c))),
    "BBANDS": (lambda h, lo, c, v: np.stack(ind.bbands(c)), lambda h, lo, c, v: np.stack(talib.BBANDS(c, 20, 2, 2))),
    "ADX": (lambda h, lo, c, v: np.stack(ind.adx(h, lo, c)),
            lambda h, lo, c, v: np.stack([talib.ADX(h, lo, c), talib.PLUS_DI(h, lo, c), talib.MINUS_DI(h, lo, c)])),
    "STOCH": (lambda h, lo, c, v: np.stack(ind.stoch(h, lo, c)), lambda h, lo, c, v: np.stack(talib.STOCH(h, lo, c))),
    "CCI": (lambda h, lo, c, v: ind.cci(h, lo, c, 14), lambda h, lo, c, v: talib.CCI(h, lo, c, 14)),
    "WILLR": (lambda h, lo, c, v: ind.willr(h, lo, c, 14), lambda h, lo, c, v: talib.WILLR(h, lo, c, 14)),
    "MFI": (lambda h, lo, c, v: ind.mfi(h, lo, c, v, 14), lambda h, lo, c, v: talib.MFI(h, lo, c, v, 14)),
    "OBV": (lambda h, lo, c, v: ind.obv(c, v), lambda h, lo, c, v: talib.OBV(c, v)),
    "ROC": (lambda h, lo, c, v: ind.roc(c, 10), lambda h, lo, c, v: talib.ROC(c, 10)),
    "EMA": (lambda h, lo, c, v: ind.ema(c, 30), lambda h, lo, c, v: talib.EMA(c, 30)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_talib_after_warmup(hlcv, name):
    ours_fn, ref_fn = CASES[name]
    ours, ref = np.atleast_2d(ours_fn(*hlcv))[:, WARMUP:], np.atleast_2d(ref_fn(*hlcv))[:, WARMUP:]
    assert np.isfinite(ref).all()
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9 * np.abs(ref).max())


@pytest.mark.parametrize("name", ["RSI", "ATR", "STOCH", "WILLR", "CCI", "MFI", "OBV", "ROC", "EMA"])
def test_first_output_bar_matches_talib(hlcv, name):
    """Same warm-up length: both are NaN on exactly the same leading bars."""
    ours_fn, ref_fn = CASES[name]
    ours, ref = np.atleast_2d(ours_fn(*hlcv)), np.atleast_2d(ref_fn(*hlcv))
    np.testing.assert_array_equal(np.isnan(ours[:, :WARMUP]), np.isnan(ref[:, :WARMUP]))


def test_seeded_ewm_short_input_is_all_nan():
    assert np.isnan(ind.ema(np.arange(5.0), 10)).all()


def test_division_by_zero_gives_nan_not_inf():
    flat = np.full(50, 10.0)
    assert np.isnan(ind.willr(flat, flat, flat, 14)[20:]).all()
